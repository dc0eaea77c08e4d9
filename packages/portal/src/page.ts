/**
 * The portal's HTML: one shell that the script fills from the JSON API, and plain message pages
 * (link expired, signed out). No inline script or style: the CSP allows only the portal's own files.
 */

export interface PageInfo {
  title: string;
  brand: string | undefined;
  basePath: string;
  supportUrl: string | undefined;
}

export function escapeHtml(value: string): string {
  return value.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string,
  );
}

function head(info: PageInfo, extra = ""): string {
  const base = escapeHtml(info.basePath);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(info.title)}</title>
<link rel="stylesheet" href="${base}/assets/portal.css">
<link rel="stylesheet" href="${base}/assets/theme.css">
${extra}</head>`;
}

function banner(info: PageInfo, right = ""): string {
  const brand = info.brand ? `<span class="brand-name">${escapeHtml(info.brand)}</span>` : "";
  return `<header class="top">
  <div class="top-inner">
    <p class="brand">${brand}<span class="brand-title">${escapeHtml(info.title)}</span></p>
    ${right}
  </div>
</header>`;
}

export function portalPage(
  info: PageInfo,
  data: { csrfToken: string; basePath: string; canSignOut: boolean; returnUrl: string | null },
): string {
  // JSON in a data block is never executed; `<` is escaped so no `</script>` can end it early.
  const config = JSON.stringify({ ...data, title: info.title, supportUrl: info.supportUrl ?? null }).replace(
    /</g,
    "\\u003c",
  );
  const base = escapeHtml(info.basePath);
  const account = `<div class="account" id="account" aria-live="polite"></div>`;
  return `${head(
    info,
    `<script type="application/json" id="flux-portal-config">${config}</script>
<script src="${base}/assets/portal.js" defer></script>
`,
  )}
<body>
<a class="skip" href="#main">Skip to content</a>
${banner(info, account)}
<nav class="tabs" aria-label="Portal">
  <div class="tabs-inner">
    <a href="#/keys" data-tab="keys">Keys</a>
    <a href="#/usage" data-tab="usage">Usage</a>
    <a href="#/audit" data-tab="audit">Audit log</a>
  </div>
</nav>
<main id="main" tabindex="-1">
  <p class="muted">Loading…</p>
  <noscript><p>This portal needs JavaScript.</p></noscript>
</main>
<div class="toast" id="toast" role="status" aria-live="polite"></div>
</body>
</html>
`;
}

export function messagePage(info: PageInfo, message: { heading: string; text: string }): string {
  const support = info.supportUrl
    ? `<p><a href="${escapeHtml(info.supportUrl)}">Contact support</a></p>`
    : "";
  return `${head(info)}
<body>
${banner(info)}
<main id="main" class="message">
  <h1>${escapeHtml(message.heading)}</h1>
  <p>${escapeHtml(message.text)}</p>
  ${support}
</main>
</body>
</html>
`;
}
