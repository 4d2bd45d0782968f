/**
 * What the CLI prints of what others wrote — task names, ids, details, reasons, errors — as text a
 * terminal shows and does not obey: control characters (ESC starts a terminal escape sequence that
 * can retitle the window, move the cursor or hide what follows), DEL, the C1 controls (0x9B is an
 * 8-bit CSI) and the bidirectional overrides that reorder what is shown are printed escaped, `\x1b`.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escaped(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** A value for a line of human output: every unprintable character escaped, newlines and tabs too. */
export function printable(value: unknown): string {
  return String(value).replace(UNPRINTABLE, escaped);
}

/**
 * JSON for output: JSON.stringify escapes C0 controls already; the others are escaped the JSON way
 * (`\u009b`), so the text is the same JSON, and safe on a terminal.
 */
export function printableJson(value: unknown): string {
  // Only its layout's newlines are raw control characters: JSON.stringify escapes those in strings.
  return JSON.stringify(value, null, 2).replace(
    UNPRINTABLE_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

const UNPRINTABLE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
