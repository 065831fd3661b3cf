// Checks of a Grafana dashboard against the metric types a node actually exposes, for the tests:
// counter functions (rate, irate, increase, resets) only over counters, gauge functions (deriv,
// delta, idelta, predict_linear) never over counters, one unit per panel that fits what its
// queries measure (seconds, bytes or counts, told by the metric names), and every panel and query
// on the dashboard's data source variable.

export interface DashboardTarget {
  expr: string;
  datasource?: { type?: string; uid?: string };
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  targets?: DashboardTarget[];
  fieldConfig?: {
    defaults?: {
      unit?: string;
      color?: { mode?: string };
      thresholds?: { steps: { color: string; value: number | null }[] };
      mappings?: { type: string; options: Record<string, { text?: string; color?: string }> }[];
    };
    overrides?: { matcher: unknown; properties: { id: string; value?: unknown }[] }[];
  };
  options?: Record<string, unknown>;
  panels?: DashboardPanel[];
}

export interface Dashboard {
  templating: { list: { name: string; type: string; query?: string; current?: { value?: string } }[] };
  panels: DashboardPanel[];
}

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

/** Metric family name → type, from the `# TYPE` lines of an exposition (plus Prometheus' own `up`). */
export function metricTypes(exposition: string): Map<string, MetricType> {
  const types = new Map<string, MetricType>([['up', 'gauge']]);
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1] ?? '', (m[2] ?? 'untyped') as MetricType);
  return types;
}

/**
 * Whether a series name behaves as a counter (a counter, or a histogram's or summary's _bucket,
 * _sum or _count) or as a gauge; undefined for a name no node exposes.
 */
export function seriesKind(name: string, types: ReadonlyMap<string, MetricType>): 'counter' | 'gauge' | undefined {
  const type = types.get(name);
  if (type === 'counter') return 'counter';
  if (type === 'gauge') return 'gauge';
  const family = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (family !== null) {
    const familyType = types.get(family[1] ?? '');
    if (familyType === 'histogram' || (familyType === 'summary' && family[2] !== 'bucket')) return 'counter';
  }
  return undefined;
}

const COUNTER_FUNCTIONS = ['rate', 'irate', 'increase', 'resets'];
const GAUGE_FUNCTIONS = ['deriv', 'delta', 'idelta', 'predict_linear'];

/** Problems with the range functions of one PromQL expression. */
export function rangeFunctionProblems(expr: string, types: ReadonlyMap<string, MetricType>): string[] {
  const problems: string[] = [];
  // The argument is looked at ahead, not consumed, so `sum(rate(x[1m]))` finds the inner rate() too.
  for (const m of expr.matchAll(/\b([a-z_]+)\s*\((?=\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(\(?))/g)) {
    const fn = m[1] ?? '';
    const counterFn = COUNTER_FUNCTIONS.includes(fn);
    if (!counterFn && !GAUGE_FUNCTIONS.includes(fn)) continue;
    const name = m[2];
    if (name === undefined || m[3] === '(') {
      problems.push(`${fn}() over something other than a plain series selector cannot be checked: ${expr}`);
      continue;
    }
    const kind = seriesKind(name, types);
    if (kind === undefined) problems.push(`${fn}() over ${name}, which no node exposes`);
    else if (counterFn && kind === 'gauge') problems.push(`${fn}() over the gauge ${name} (use deriv() or delta())`);
    else if (!counterFn && kind === 'counter') problems.push(`${fn}() over the counter ${name} (use rate() or increase())`);
  }
  return problems;
}

export type Dimension = 'seconds' | 'bytes' | 'count';

/** What a series measures, by Prometheus naming convention; a histogram's _count counts. */
export function dimensionOf(name: string): Dimension {
  if (name.endsWith('_count')) return 'count';
  if (/_seconds(_|$)/.test(name)) return 'seconds';
  if (/_bytes(_|$)/.test(name)) return 'bytes';
  return 'count';
}

const UNITS_FOR: Readonly<Record<Dimension, readonly string[]>> = {
  seconds: ['s', 'ms', 'µs', 'ns', 'dtdurations', 'dtdurationms'],
  bytes: ['bytes', 'decbytes', 'bits', 'decbits', 'Bps', 'binBps', 'bps', 'binbps'],
  count: ['none', 'short', 'ops', 'reqps', 'rps', 'wps', 'iops', 'cps', 'percent', 'percentunit'],
};

/** The series names an expression selects (function names, keywords and label names excluded). */
export function seriesNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const withoutLabels = withoutStrings.replace(/\{[^}]*\}/g, '{}').replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  return [...withoutLabels.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)]
    .map((m) => m[1] ?? '')
    .filter((name) => !/^(?:and|or|unless|bool|offset|inf|nan)$/i.test(name) && !/^\d/.test(name) && !/^\d+[smhdwy]$/.test(name));
}

/** Problems with a panel's unit: its queries measure different things, or the unit does not fit. */
export function unitProblems(panel: DashboardPanel): string[] {
  const dimensions = new Set<Dimension>();
  for (const target of panel.targets ?? []) for (const name of seriesNames(target.expr)) dimensions.add(dimensionOf(name));
  const unit = panel.fieldConfig?.defaults?.unit ?? '';
  if (dimensions.size > 1) return [`panel "${panel.title}" mixes ${[...dimensions].sort().join(' and ')} in one panel`];
  const [dimension] = [...dimensions];
  if (dimension !== undefined && unit !== '' && !UNITS_FOR[dimension].includes(unit)) {
    return [`panel "${panel.title}" shows ${dimension} with unit ${unit}`];
  }
  return [];
}

function allPanels(panels: readonly DashboardPanel[]): DashboardPanel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every problem the checks find in a dashboard, each naming the panel. */
export function dashboardProblems(dashboard: Dashboard, types: ReadonlyMap<string, MetricType>): string[] {
  const problems: string[] = [];
  const variable = dashboard.templating.list.find((v) => v.type === 'datasource' && v.query === 'prometheus');
  if (variable === undefined) problems.push('no Prometheus data source variable');
  const wanted = variable === undefined ? undefined : `\${${variable.name}}`;
  for (const panel of allPanels(dashboard.panels)) {
    if (panel.type === 'row') continue;
    const where = `panel "${panel.title}"`;
    if (panel.datasource?.uid !== wanted) problems.push(`${where} uses data source ${String(panel.datasource?.uid)}, not ${String(wanted)}`);
    const unit = panel.fieldConfig?.defaults?.unit;
    if (typeof unit !== 'string' || unit.length === 0) problems.push(`${where} has no unit`);
    for (const problem of unitProblems(panel)) problems.push(problem);
    for (const override of panel.fieldConfig?.overrides ?? []) {
      if (override.properties.some((p) => p.id === 'unit')) problems.push(`${where} overrides the unit of some series (mixed units)`);
    }
    const targets = panel.targets ?? [];
    if (targets.length === 0) problems.push(`${where} has no query`);
    for (const target of targets) {
      if (target.datasource?.uid !== wanted) problems.push(`${where}: a query uses data source ${String(target.datasource?.uid)}, not ${String(wanted)}`);
      for (const problem of rangeFunctionProblems(target.expr, types)) problems.push(`${where}: ${problem}`);
    }
  }
  return problems;
}
