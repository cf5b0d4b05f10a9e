// charts.js — the dashboard's time charts on uPlot (vendored from npm into
// www/vendor/ by scripts/build-worker.sh): one wrapper that creates a chart
// once and afterwards only swaps its data, so an auto-refresh never blanks or
// flickers it; times on the axes are in the site's zone. Annotations
// (deploys, incidents, campaigns, notes) are marked as vertical lines over
// the plot, each an element with its kind and a title to hover.

import { timeZone } from './format.js';

export const COLORS = {
  value: '#0b5cad',
  expected: '#57606a',
  band: 'rgba(11, 92, 173, 0.16)',
  previous: '#8250df',
  p50: '#1a7f37',
  p95: '#bf6a02',
  p99: '#cf222e',
};
const CLASS_COLORS = { '2xx': '#1a7f37', '3xx': '#0b5cad', '4xx': '#bf6a02', '5xx': '#cf222e', other: '#57606a' };

/** A colour per status class or dimension value. */
export const colorFor = (label, i) => CLASS_COLORS[label] ?? ['#0b5cad', '#8250df', '#1a7f37', '#bf6a02', '#cf222e', '#57606a'][i % 6];

/** uPlot's US-style axis and legend templates, as 24-hour clock and day-first dates. */
function dayFirst24h(tpl) {
  return tpl
    .replace('{M}/{D}/{YY}', '{D} {MMM}')
    .replace('{M}/{D}', '{D} {MMM}')
    .replace('{h}:{mm}:{ss} {aa}', '{HH}:{mm}:{ss}')
    .replace('{h}:{mm}{aa}', '{HH}:{mm}')
    .replace('{h}{aa}', '{HH}:00');
}
const fullRange = (u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 1) * 1.08)];
function sparkRange(u, min, max) {
  if (min === null || max === null) return [0, 1];
  const pad = Math.max((max - min) * 0.08, 0.5);
  return [Math.max(0, min - pad), max + pad];
}

const ANNOTATION_LABEL = { deploy: 'Deploy', incident: 'Incident', campaign: 'Campaign', note: 'Note' };

/** What hovering an annotation's mark says. */
export function annotationTitle(a) {
  const what = [ANNOTATION_LABEL[a.kind] ?? a.kind, a.version].filter(Boolean).join(' ');
  return `${what}: ${a.text} (${new Date(a.at * 1000).toISOString().replace('.000Z', 'Z')})`;
}

/**
 * Places one mark per annotation over the plot. The marks are those of the
 * view's period, whose last step may not be plotted yet (a point stands
 * for its whole step, and the step under way is left off): a mark after
 * the last point is placed on it (its title keeps the exact time).
 */
function placeMarks(u, marks) {
  for (const old of u.over.querySelectorAll('.annotation-mark')) old.remove();
  const { min, max } = u.scales.x;
  if (min === null || max === null) return;
  for (const a of marks) {
    if (!(a.at >= min)) continue;
    const mark = document.createElement('div');
    mark.className = `annotation-mark annotation-${a.kind}`;
    mark.dataset.kind = a.kind;
    mark.dataset.id = a.id;
    mark.title = annotationTitle(a);
    mark.style.left = `${u.valToPos(Math.min(a.at, max), 'x')}px`;
    u.over.append(mark);
  }
}

/**
 * A chart in `host`. `series`: [{label, color, dash, band}] — entries with
 * band: 'high' / 'low' are drawn only as the filled band between them.
 * compact: a sparkline (no axes, legend or cursor).
 * Returns { update(data, series?, marks?) } with data = [xs (Unix s), ...ys]
 * and marks the annotations to mark ([{id, kind, at, text, version}]; kept
 * until an update passes others).
 */
export function timeChart(host, { height = 220, series, compact = false }) {
  let plot = null;
  let current = series;
  let lastWidth = 0;
  let marks = [];

  const width = () => Math.max(compact ? 120 : 280, Math.floor(host.clientWidth || host.parentElement?.clientWidth || 300));

  function options() {
    const hi = current.findIndex((s) => s.band === 'high') + 1;
    const lo = current.findIndex((s) => s.band === 'low') + 1;
    return {
      width: width(),
      height,
      tzDate: (ts) => globalThis.uPlot.tzDate(new Date(ts * 1000), timeZone()),
      fmtDate: (tpl) => globalThis.uPlot.fmtDate(dayFirst24h(tpl)),
      legend: { show: !compact, live: !compact },
      cursor: compact ? { show: false } : { drag: { x: false, y: false } },
      select: { show: false },
      padding: compact ? [4, 2, 2, 2] : undefined,
      // A sparkline shows shape (its own min..max); a full chart starts at 0.
      scales: { x: { time: true }, y: { range: compact ? sparkRange : fullRange } },
      axes: compact ? [{ show: false }, { show: false }] : [{ stroke: '#57606a', grid: { stroke: '#e6e8eb' } }, { stroke: '#57606a', grid: { stroke: '#e6e8eb' }, size: 56 }],
      series: [
        {},
        ...current.map((s) => ({
          label: s.label,
          stroke: s.band ? 'transparent' : s.color,
          width: s.band ? 0 : compact ? 1.5 : 2,
          dash: s.dash,
          // Full charts let uPlot mark points where data is sparse.
          points: compact || s.band ? { show: false } : {},
          spanGaps: false,
        })),
      ],
      bands: hi > 0 && lo > 0 ? [{ series: [hi, lo], fill: COLORS.band }] : [],
      hooks: { draw: [(u) => placeMarks(u, marks)] },
    };
  }

  function resize() {
    const w = width();
    if (plot && w !== lastWidth && host.clientWidth > 0) {
      lastWidth = w;
      plot.setSize({ width: w, height });
    }
  }
  new ResizeObserver(resize).observe(host);

  return {
    update(data, nextSeries, nextMarks) {
      if (nextMarks) marks = nextMarks;
      const changed = nextSeries && JSON.stringify(nextSeries) !== JSON.stringify(current);
      if (changed) current = nextSeries;
      if (plot && changed) {
        plot.destroy();
        plot = null;
      }
      if (!plot) {
        host.textContent = '';
        plot = new globalThis.uPlot(options(), data, host);
        lastWidth = width();
      } else {
        plot.setData(data);
      }
    },
  };
}
