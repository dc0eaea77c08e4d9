/** The portal's stylesheet, served from the package (no CDN, no inline styles). */
export const PORTAL_STYLES = `
:root {
  --accent: #0b5cd5;
  --fg: #1f2328;
  --muted: #57606a;
  --bg: #ffffff;
  --panel: #f6f8fa;
  --border: #d0d7de;
  --danger: #b42318;
  --ok: #1a7f37;
  --focus: #0b5cd5;
  --radius: 8px;
  color-scheme: light;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; color: var(--fg); background: var(--bg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -9999px; top: 0; background: var(--bg); padding: 8px 12px; z-index: 10; }
.skip:focus { left: 8px; top: 8px; }
.visually-hidden { position: absolute !important; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.top { border-bottom: 1px solid var(--border); background: var(--panel); }
.top-inner, .tabs-inner, main { max-width: 1080px; margin: 0 auto; padding: 0 20px; }
.top-inner { display: flex; align-items: center; justify-content: space-between; gap: 12px; min-height: 56px; flex-wrap: wrap; }
.brand { margin: 0; font-weight: 600; font-size: 17px; display: flex; gap: 10px; align-items: baseline; }
.brand-name { color: var(--accent); }
.account { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; font-size: 14px; color: var(--muted); }
.account strong { color: var(--fg); font-weight: 600; }
.tabs { border-bottom: 1px solid var(--border); }
.tabs-inner { display: flex; gap: 4px; overflow-x: auto; }
.tabs a { display: inline-block; padding: 12px 14px; color: var(--fg); text-decoration: none; border-bottom: 3px solid transparent; white-space: nowrap; }
.tabs a[aria-current="page"] { border-bottom-color: var(--accent); font-weight: 600; }
.tabs a:hover { background: var(--panel); }
main { padding-top: 20px; padding-bottom: 48px; }
main:focus { outline: none; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; }
.muted { color: var(--muted); }
.small { font-size: 13px; }
.bar { display: flex; align-items: center; justify-content: space-between; gap: 12px; flex-wrap: wrap; margin-bottom: 16px; }
button, .button {
  font: inherit; font-weight: 600; border-radius: 6px; border: 1px solid var(--border);
  background: var(--bg); color: var(--fg); padding: 7px 14px; cursor: pointer; min-height: 36px; text-decoration: none; display: inline-flex; align-items: center;
}
button:hover { background: var(--panel); }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.primary:hover { filter: brightness(0.92); }
button.danger { color: var(--danger); border-color: #f0b4ae; }
button.danger.solid { background: var(--danger); color: #fff; border-color: var(--danger); }
button.link { border: 0; background: none; color: var(--accent); padding: 0; min-height: 0; font-weight: 500; text-decoration: underline; }
button[disabled] { opacity: 0.55; cursor: not-allowed; }
table { width: 100%; border-collapse: collapse; font-size: 14px; }
th, td { text-align: left; padding: 10px 8px; border-bottom: 1px solid var(--border); vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.nowrap { white-space: nowrap; }
.block { display: block; }
.bar select { width: auto; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.scope { display: inline-block; background: var(--panel); border: 1px solid var(--border); border-radius: 999px; padding: 0 8px; margin: 0 4px 4px 0; font-size: 12px; }
.badge { display: inline-block; border-radius: 999px; padding: 1px 9px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.badge.active { background: #dafbe1; color: #116329; }
.badge.expiring { background: #fff8c5; color: #7d4e00; }
.badge.grace { background: #fbefff; color: #6e40c9; }
.badge.revoked { background: #ffebe9; color: #a40e26; }
.badge.expired { background: #eaeef2; color: #424a53; }
.panel { border: 1px solid var(--border); border-radius: var(--radius); padding: 16px; margin: 0 0 16px; background: var(--bg); }
.panel.notice { background: #fbefff; border-color: #d8b9ff; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 6px 16px; margin: 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
form .field { margin: 0 0 14px; }
label, legend { font-weight: 600; display: block; margin-bottom: 4px; }
fieldset { border: 0; padding: 0; margin: 0 0 14px; }
.check { font-weight: 400; display: flex; gap: 8px; align-items: flex-start; margin: 4px 0; }
.check input { margin-top: 4px; }
input[type="text"], input[type="date"], select, textarea {
  font: inherit; width: 100%; max-width: 420px; padding: 7px 10px; border: 1px solid #8c959f; border-radius: 6px; background: var(--bg); color: var(--fg);
}
.hint { font-size: 13px; color: var(--muted); margin-top: 4px; }
.actions { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
dialog { border: 1px solid var(--border); border-radius: 12px; padding: 0; width: min(560px, calc(100vw - 24px)); color: var(--fg); }
dialog::backdrop { background: rgba(31, 35, 40, 0.45); }
dialog .dialog-body { padding: 20px; }
dialog h2 { margin-top: 0; }
.secret-box { display: flex; gap: 8px; align-items: stretch; flex-wrap: wrap; }
.secret-box input { flex: 1 1 240px; max-width: none; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.warning { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; margin: 12px 0; }
.error { color: var(--danger); }
.error-box { border: 1px solid #f0b4ae; background: #ffebe9; border-radius: 6px; padding: 8px 12px; margin: 0 0 12px; }
figure { margin: 0; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 6px; }
.legend { display: flex; gap: 14px; font-size: 13px; color: var(--muted); margin: 4px 0 8px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: baseline; }
.swatch.calls { background: var(--accent); }
.swatch.errors { background: var(--danger); }
.swatch.refused { background: #b54708; }
.chart-bar { fill: var(--accent); }
.chart-err { fill: var(--danger); }
.chart-refused { fill: #b54708; }
.chart-axis { stroke: var(--border); }
.chart-label { fill: var(--muted); font-size: 11px; }
.toast { position: fixed; bottom: 16px; left: 50%; transform: translateX(-50%); background: var(--fg); color: #fff; padding: 8px 14px; border-radius: 6px; font-size: 14px; opacity: 0; transition: opacity .2s; pointer-events: none; max-width: calc(100vw - 32px); }
.toast.show { opacity: 1; }
.message { padding-top: 48px; }
.empty { padding: 24px; text-align: center; color: var(--muted); border: 1px dashed var(--border); border-radius: var(--radius); }
@media (max-width: 720px) {
  .top-inner, .tabs-inner, main { padding: 0 14px; }
  main { padding-top: 16px; }
  .grid2 { grid-template-columns: 1fr; }
  table.cards thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  table.cards tr { display: block; border: 1px solid var(--border); border-radius: var(--radius); margin: 0 0 12px; padding: 8px 12px; }
  table.cards td { display: grid; grid-template-columns: 110px 1fr; gap: 8px; border: 0; padding: 4px 0; }
  table.cards td::before { content: attr(data-label); color: var(--muted); font-size: 13px; }
  table.cards td > div { min-width: 0; }
  table.cards td .badge { justify-self: start; }
  .facts { grid-template-columns: 1fr; gap: 0; }
  .facts dd { margin-bottom: 8px; }
}
`;
