/**
 * Stored strings (key names, revoke reasons, org names, metadata, user agents) come from people
 * the operator does not control, e.g. a customer in the portal. Written raw to a terminal, an
 * `ESC]0;…BEL` or `ESC[2J` in a key name rewrites the title or clears the screen, and a bidi
 * override reorders what the operator reads. Human output escapes them; JSON output stays exact.
 */

// C0 controls, DEL, C1 controls, and the Unicode format characters that reorder or hide text
// (bidi embeddings, overrides and isolates, the Arabic letter mark, zero-width joiners and marks,
// line and paragraph separators, the BOM).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
// The same, line feeds excepted.
const UNSAFE_BUT_NEWLINE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeChar(char: string): string {
  const named = NAMED[char];
  if (named !== undefined) return named;
  const code = char.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** One value shown to a person: every control or reordering character as a visible escape. */
export function printable(value: string): string {
  return value.replace(UNSAFE, escapeChar);
}

/**
 * A whole block of output whose own line breaks are ours: everything but `\n` escaped. The last
 * line of defence behind `printable` on each value (a value's own line breaks are escaped there).
 */
export function printableLines(text: string): string {
  return text.replace(UNSAFE_BUT_NEWLINE, escapeChar);
}
