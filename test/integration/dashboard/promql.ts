/**
 * Just enough PromQL to keep a dashboard honest: a tokenizer, and a reader that finds in an expression
 * the series it selects (metric name and matchers) and the labels its clauses name (by, without, on,
 * ignoring, group_left, group_right), each with the selectors it applies to. It does not evaluate or
 * fully validate PromQL — `promtool check rules` does that — but it never mistakes a string, a range, a
 * function or a keyword for a metric.
 *
 * Grafana's variables (`$namespace`, `${queue}`, `$__rate_interval`) are tokens of their own, and
 * Grafana's templating queries (`label_values(metric{...}, label)`) are read by {@link readTemplateQuery}.
 */

export type TokenKind = 'identifier' | 'string' | 'number' | 'duration' | 'variable' | 'range' | 'operator' | 'punct';

export interface Token {
  kind: TokenKind;
  /** The source text; for a string, its value without quotes or escapes. */
  text: string;
  /** Offset in the expression. */
  at: number;
}

export class PromqlSyntaxError extends Error {
  override name = 'PromqlSyntaxError';
  readonly code = 'PROMQL_SYNTAX';
  constructor(message: string, expr: string, at: number) {
    super(`${message} at offset ${at}: ${expr.slice(0, at)}⟨here⟩${expr.slice(at)}`);
  }
}

const identifierStart = /[A-Za-z_:]/;
const identifierPart = /[A-Za-z0-9_:]/;
const digit = /[0-9]/;
const durationPattern = /^(?:[0-9]+(?:ms|s|m|h|d|w|y))+/;
const numberPattern = /^(?:0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)/;
const operators = ['==', '!=', '=~', '!~', '>=', '<=', '>', '<', '=', '+', '-', '*', '/', '%', '^'];
const puncts = new Set(['(', ')', '{', '}', ',', '@']);

/** Splits an expression into tokens. Comments (`# ...`) and whitespace are dropped. */
export function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i++;
    } else if (c === '"' || c === "'" || c === '`') {
      const start = i;
      let value = '';
      i++;
      for (;;) {
        if (i >= expr.length) throw new PromqlSyntaxError('unterminated string', expr, start);
        const d = expr[i]!;
        if (d === c) break;
        if (d === '\\' && c !== '`') {
          value += expr[i + 1] ?? '';
          i += 2;
        } else {
          value += d;
          i++;
        }
      }
      i++;
      tokens.push({ kind: 'string', text: value, at: start });
    } else if (c === '[') {
      // A range or subquery ([5m], [$__rate_interval], [1h:5m]): nothing in it names a series or label.
      const end = expr.indexOf(']', i);
      if (end < 0) throw new PromqlSyntaxError('unterminated range', expr, i);
      tokens.push({ kind: 'range', text: expr.slice(i + 1, end).trim(), at: i });
      i = end + 1;
    } else if (c === '$') {
      const match = /^\$(?:\{[^}]+\}|\w+)/.exec(expr.slice(i));
      if (!match) throw new PromqlSyntaxError('a $ that starts no variable', expr, i);
      tokens.push({ kind: 'variable', text: match[0], at: i });
      i += match[0].length;
    } else if (digit.test(c) || (c === '.' && digit.test(expr[i + 1] ?? ''))) {
      const rest = expr.slice(i);
      const duration = durationPattern.exec(rest);
      const number = numberPattern.exec(rest)!;
      const kind = duration && duration[0].length >= number[0].length ? 'duration' : 'number';
      const text = kind === 'duration' ? duration![0] : number[0];
      tokens.push({ kind, text, at: i });
      i += text.length;
    } else if (identifierStart.test(c)) {
      const start = i;
      while (i < expr.length && identifierPart.test(expr[i]!)) i++;
      tokens.push({ kind: 'identifier', text: expr.slice(start, i), at: start });
    } else if (puncts.has(c)) {
      tokens.push({ kind: 'punct', text: c, at: i });
      i++;
    } else {
      const op = operators.find((o) => expr.startsWith(o, i));
      if (!op) throw new PromqlSyntaxError(`unexpected ${JSON.stringify(c)}`, expr, i);
      tokens.push({ kind: 'operator', text: op, at: i });
      i += op.length;
    }
  }
  return tokens;
}

export interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

/** A vector selector: `metric{label="value", ...}`. */
export interface Selector {
  /** Undefined for a selector with no name, or whose `__name__` is a regex or a variable. */
  metric: string | undefined;
  matchers: Matcher[];
  at: number;
}

export type ClauseKeyword = 'by' | 'without' | 'on' | 'ignoring' | 'group_left' | 'group_right' | 'label_values';

/** Labels named by a clause, and the selectors whose series must carry them. */
export interface Clause {
  keyword: ClauseKeyword;
  labels: string[];
  scope: Selector[];
  at: number;
}

export interface Reading {
  selectors: Selector[];
  clauses: Clause[];
}

/** Words that are never metric names where they stand. */
const keywords = new Set(['bool', 'offset', 'and', 'or', 'unless', 'atan2', 'inf', 'nan']);
const clauseKeywords = new Set<string>(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

interface Group {
  open: '(' | '{' | '';
  items: Item[];
  at: number;
}
type Item = Token | Group;

const isGroup = (item: Item | undefined): item is Group => item !== undefined && 'items' in item;
const isToken = (item: Item | undefined, text?: string): item is Token =>
  item !== undefined && !('items' in item) && (text === undefined || item.text === text);

/** Nests the tokens by their parentheses and braces. */
function nest(tokens: Token[], expr: string): Group {
  const root: Group = { open: '', items: [], at: 0 };
  const stack: Group[] = [root];
  for (const token of tokens) {
    const top = stack[stack.length - 1]!;
    if (token.kind === 'punct' && (token.text === '(' || token.text === '{')) {
      const group: Group = { open: token.text, items: [], at: token.at };
      top.items.push(group);
      stack.push(group);
    } else if (token.kind === 'punct' && (token.text === ')' || token.text === '}')) {
      if (top.open !== (token.text === ')' ? '(' : '{')) {
        throw new PromqlSyntaxError(`unbalanced ${JSON.stringify(token.text)}`, expr, token.at);
      }
      stack.pop();
    } else {
      top.items.push(token);
    }
  }
  if (stack.length > 1) throw new PromqlSyntaxError('unclosed bracket', expr, stack[stack.length - 1]!.at);
  return root;
}

/** Splits a group's items at its top-level commas. */
function segments(items: Item[]): Item[][] {
  const out: Item[][] = [[]];
  for (const item of items) {
    if (isToken(item, ',') && item.kind === 'punct') out.push([]);
    else out[out.length - 1]!.push(item);
  }
  return out;
}

function labelList(group: Group, expr: string): string[] {
  return segments(group.items)
    .filter((segment) => segment.length > 0)
    .map((segment) => {
      const [token] = segment;
      if (segment.length !== 1 || !isToken(token) || (token.kind !== 'identifier' && token.kind !== 'string')) {
        throw new PromqlSyntaxError('expected a label name', expr, isToken(token) ? token.at : group.at);
      }
      return token.text;
    });
}

function matchers(group: Group, expr: string): { metric?: string; matchers: Matcher[] } {
  let metric: string | undefined;
  const out: Matcher[] = [];
  for (const segment of segments(group.items)) {
    if (segment.length === 0) continue;
    const [label, op, value] = segment;
    // Prometheus 3 accepts a quoted metric name among the matchers: {"metric.name", job="x"}.
    if (segment.length === 1 && isToken(label) && label.kind === 'string') {
      metric = label.text;
      continue;
    }
    if (
      segment.length !== 3 ||
      !isToken(label) ||
      (label.kind !== 'identifier' && label.kind !== 'string') ||
      !isToken(op) ||
      !['=', '!=', '=~', '!~'].includes(op.text) ||
      !isToken(value) ||
      (value.kind !== 'string' && value.kind !== 'variable')
    ) {
      throw new PromqlSyntaxError('expected label="value"', expr, isToken(label) ? label.at : group.at);
    }
    out.push({ label: label.text, op: op.text as Matcher['op'], value: value.text });
  }
  return { ...(metric !== undefined ? { metric } : {}), matchers: out };
}

function selectorFrom(name: string | undefined, braces: Group | undefined, at: number, expr: string): Selector {
  const inside = braces ? matchers(braces, expr) : { matchers: [] };
  let metric = name ?? inside.metric;
  const named = inside.matchers.filter((m) => m.label === '__name__');
  if (metric === undefined && named.length === 1 && named[0]!.op === '=' && !named[0]!.value.includes('$')) {
    metric = named[0]!.value;
  }
  return { metric, matchers: inside.matchers.filter((m) => m.label !== '__name__'), at };
}

/** Reads the selectors and clauses of one expression. */
export function readExpression(expr: string): Reading {
  const root = nest(tokenize(expr), expr);
  const selectors: Selector[] = [];
  const clauses: Clause[] = [];
  /** The selectors whose labels reach each group's result. */
  const found = new Map<Group, Selector[]>();

  const visit = (group: Group): Selector[] => {
    const all: Selector[] = [];
    const bySegment: Selector[][] = [];
    const pending: { keyword: ClauseKeyword; labels: string[]; at: number; segment: number }[] = [];
    let segment = 0;
    bySegment[0] = [];
    // The right-hand side of `and` and `unless` only filters: its labels never reach the result.
    let filtering = false;
    const add = (s: Selector[]) => {
      if (!filtering) all.push(...s);
      bySegment[segment]!.push(...s);
    };
    const items = group.items;
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      const next = items[i + 1];
      if (isGroup(item)) {
        if (item.open === '{') {
          const selector = selectorFrom(undefined, item, item.at, expr);
          selectors.push(selector);
          add([selector]);
        } else {
          add(visit(item));
        }
        continue;
      }
      if (item.kind === 'punct' && item.text === ',') {
        bySegment[++segment] = [];
        filtering = false;
        continue;
      }
      if (item.kind !== 'identifier') continue;
      const word = item.text;
      if (word === 'and' || word === 'unless') filtering = true;
      if (word === 'or') filtering = false;
      if (clauseKeywords.has(word)) {
        const keyword = word as ClauseKeyword;
        const list = isGroup(next) && next.open === '(' ? next : undefined;
        if (!list && keyword !== 'group_left' && keyword !== 'group_right') {
          throw new PromqlSyntaxError(`expected (labels) after ${keyword}`, expr, item.at);
        }
        const labels = list ? labelList(list, expr) : [];
        const before = items[i - 1];
        if (list) i++;
        if (keyword === 'by' || keyword === 'without') {
          // `sum by (x) (expr)` or `sum (expr) by (x)`.
          const after = items[i + 1];
          let argument: Group;
          if (isGroup(after) && after.open === '(') {
            add(visit(after));
            argument = after;
            i++;
          } else if (isGroup(before) && before.open === '(') {
            argument = before;
          } else {
            throw new PromqlSyntaxError(`${keyword} (...) applies to nothing`, expr, item.at);
          }
          clauses.push({ keyword, labels, scope: found.get(argument) ?? [], at: item.at });
        } else {
          // Vector matching: it applies to both operands, which share this comma-separated segment.
          pending.push({ keyword, labels, at: item.at, segment });
        }
        continue;
      }
      // An aggregation with its clause first: `sum by (x) (...)`.
      if (isToken(next) && (next.text === 'by' || next.text === 'without')) continue;
      if (keywords.has(word)) continue;
      if (isGroup(next) && next.open === '(') {
        add(visit(next)); // a function or an aggregation: its arguments are read as expressions
        i++;
        continue;
      }
      const braces = isGroup(next) && next.open === '{' ? next : undefined;
      if (braces) i++;
      const selector = selectorFrom(word, braces, item.at, expr);
      selectors.push(selector);
      add([selector]);
    }
    for (const p of pending) {
      clauses.push({ keyword: p.keyword, labels: p.labels, scope: bySegment[p.segment]!, at: p.at });
    }
    found.set(group, all);
    return all;
  };

  visit(root);
  return { selectors, clauses };
}

/**
 * Reads a Grafana templating query of the Prometheus data source: `label_values(selector, label)` (whose
 * label must be on the selected series), `query_result(expr)`; `label_values(label)` and `metrics(...)`,
 * which name no series, are refused: a variable should say where its values come from.
 */
export function readTemplateQuery(query: string): Reading {
  const q = query.trim();
  const labelValues = /^label_values\s*\(([\s\S]*)\)$/.exec(q);
  if (labelValues) {
    const inner = labelValues[1]!;
    const comma = inner.lastIndexOf(',');
    if (comma < 0) throw new PromqlSyntaxError('label_values(label) names no series: give a selector', q, 0);
    const label = inner.slice(comma + 1).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(label)) throw new PromqlSyntaxError('expected a label name', q, comma);
    const reading = readExpression(inner.slice(0, comma));
    if (reading.selectors.length !== 1) {
      throw new PromqlSyntaxError('label_values() takes one selector', q, 0);
    }
    return {
      selectors: reading.selectors,
      clauses: [...reading.clauses, { keyword: 'label_values', labels: [label], scope: reading.selectors, at: 0 }],
    };
  }
  const result = /^query_result\s*\(([\s\S]*)\)$/.exec(q);
  if (result) return readExpression(result[1]!);
  throw new PromqlSyntaxError('expected label_values(selector, label) or query_result(expr)', q, 0);
}
