/**
 * The other chart shapes of the report page as vega-lite specs: curves over epochs,
 * grouped bars (per-class accuracy of two models), and a scatter (accuracy vs size).
 *
 * @example
 *   const bars = [{ group: 'class 0', series: 'base', value: 0.9 }, { group: 'class 0', series: 'component', value: 0.95 }];
 *   groupedBars(bars, { title: 'accuracy', percent: true });
 */

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

export interface Point {
  /** x position (epoch) */
  x: number;
  y: number;
  /** one line per series; colour by `color`, dash by `dash` */
  color: string;
  dash: string;
}

/** Line charts side by side, one per metric (e.g. loss | accuracy), x shared. */
export function curves(panels: { title: string; points: Point[]; percent?: boolean }[], xTitle = 'epoch'): object {
  return {
    $schema: SCHEMA,
    hconcat: panels.map((p) => ({
      title: p.title,
      width: 360,
      height: 220,
      data: { values: p.points },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: xTitle, axis: { tickMinStep: 1, format: 'd' } },
        y: { field: 'y', type: 'quantitative', title: p.title, scale: { zero: false }, ...(p.percent ? { axis: { format: '.0%' } } : {}) },
        color: { field: 'color', type: 'nominal', title: 'run' },
        strokeDash: { field: 'dash', type: 'nominal', title: 'split' },
        shape: { field: 'dash', type: 'nominal', title: 'split' },
        tooltip: [
          { field: 'color', type: 'nominal', title: 'run' },
          { field: 'dash', type: 'nominal', title: 'split' },
          { field: 'x', type: 'quantitative', title: xTitle },
          { field: 'y', type: 'quantitative', title: p.title, format: p.percent ? '.2%' : '.4f' },
        ],
      },
    })),
    resolve: { scale: { color: 'shared', strokeDash: 'shared', shape: 'shared' } },
  };
}

export interface Bar {
  group: string;
  series: string;
  value: number;
}

/** Bars of several series per group (base vs component per class); `series` in legend order. */
export function groupedBars(bars: Bar[], opts: { title: string; percent?: boolean; series?: string[]; groupTitle?: string }): object {
  const series = opts.series ?? [...new Set(bars.map((b) => b.series))];
  const groups = [...new Set(bars.map((b) => b.group))];
  return {
    $schema: SCHEMA,
    data: { values: bars },
    width: { step: Math.max(10, Math.min(22, Math.floor(520 / Math.max(1, groups.length * series.length)))) },
    height: 200,
    mark: { type: 'bar', name: 'bars' },
    encoding: {
      x: { field: 'group', type: 'nominal', title: opts.groupTitle ?? null, sort: groups, axis: { labelAngle: groups.some((g) => g.length > 6) ? -40 : 0 } },
      xOffset: { field: 'series', type: 'nominal', sort: series },
      y: { field: 'value', type: 'quantitative', title: opts.title, ...(opts.percent ? { axis: { format: '.0%' }, scale: { domain: [0, 1] } } : {}) },
      color: { field: 'series', type: 'nominal', title: null, sort: series, scale: { range: ['#8da0cb', '#1b7837', '#e08214', '#762a83'] } },
      tooltip: [
        { field: 'group', type: 'nominal', title: opts.groupTitle ?? 'group' },
        { field: 'series', type: 'nominal', title: 'model' },
        { field: 'value', type: 'quantitative', title: opts.title, format: opts.percent ? '.2%' : '.4f' },
      ],
    },
  };
}

/** Accuracy against size, one point per row, with its label on hover. */
export function scatter(points: { x: number; y: number; label: string }[], opts: { xTitle: string; yTitle: string; percent?: boolean }): object {
  return {
    $schema: SCHEMA,
    data: { values: points },
    width: 360,
    height: 220,
    mark: { type: 'point', filled: true, size: 70 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: opts.xTitle, scale: { zero: false, padding: 14 } },
      y: { field: 'y', type: 'quantitative', title: opts.yTitle, scale: { zero: false, padding: 14 }, ...(opts.percent ? { axis: { format: '.0%' } } : {}) },
      tooltip: [
        { field: 'label', type: 'nominal', title: 'setting' },
        { field: 'x', type: 'quantitative', title: opts.xTitle, format: ',' },
        { field: 'y', type: 'quantitative', title: opts.yTitle, format: opts.percent ? '.2%' : '.4f' },
      ],
    },
  };
}
