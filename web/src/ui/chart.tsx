/**
 * A small line chart in inline SVG: a few series over time, a value axis and a time axis with
 * labels, no library. A line is broken where two points are further apart than `gapMs`, and at
 * a point whose value is NaN (nothing to show there): an idle interval reads as a gap, not as a
 * slope across it.
 */
export interface Series {
  name: string;
  points: [number, number][];
  colour: string;
}

const WIDTH = 320;
const HEIGHT = 130;
const LEFT = 30;
const RIGHT = 6;
const TOP = 8;
const BOTTOM = 20;
const TIME_TICKS = 4;

export function LineChart({ title, series, unit, gapMs, domain }: { title: string; series: Series[]; unit: string; gapMs?: number; domain?: [number, number] }) {
  const all = series.flatMap((line) => line.points).filter(([, y]) => !Number.isNaN(y));
  if (all.length === 0) return <figure class="chart"><figcaption>{title}</figcaption><p>No data yet.</p></figure>;
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => y);
  const [x0, x1] = domain ?? [Math.min(...xs), Math.max(...xs)];
  const bottom = Math.min(...ys, 0);
  const top = Math.max(...ys, 0) === bottom ? bottom + 1 : Math.max(...ys, 0);
  const sx = (x: number) => LEFT + (x1 === x0 ? (WIDTH - LEFT - RIGHT) / 2 : ((x - x0) / (x1 - x0)) * (WIDTH - LEFT - RIGHT));
  const sy = (y: number) => HEIGHT - BOTTOM - ((y - bottom) / (top - bottom)) * (HEIGHT - BOTTOM - TOP);
  const latestOf = (line: Series) => line.points.filter(([, y]) => !Number.isNaN(y)).pop()?.[1];
  const latest = series.map((line) => `${line.name} ${format(latestOf(line))}${unit}`).join(', ');
  const ticks = x1 === x0 ? [x0] : Array.from({ length: TIME_TICKS }, (_, at) => x0 + ((x1 - x0) * at) / (TIME_TICKS - 1));
  const segmentsOf = (points: [number, number][]) => segments(points, gapMs);
  const gaps = series.reduce((count, line) => count + segmentsOf(line.points).length - 1, 0);
  return (
    <figure class="chart" data-gaps={gaps}>
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`${title}: latest ${latest}; from ${timeLabel(x0, x1 - x0)} to ${timeLabel(x1, x1 - x0)}${gaps ? `; ${gaps} gap${gaps === 1 ? '' : 's'}` : ''}`}>
        <line x1={LEFT} y1={sy(bottom)} x2={WIDTH - RIGHT} y2={sy(bottom)} class="axis" />
        <line x1={LEFT} y1={TOP} x2={LEFT} y2={sy(bottom)} class="axis" />
        <text x={LEFT - 3} y={sy(top) + 4} class="tick" text-anchor="end">{format(top)}</text>
        <text x={LEFT - 3} y={sy(bottom)} class="tick" text-anchor="end">{format(bottom)}</text>
        {ticks.map((x, at) => (
          <>
            <line x1={sx(x)} y1={sy(bottom)} x2={sx(x)} y2={sy(bottom) + 3} class="axis" />
            <text x={sx(x)} y={HEIGHT - 6} class="tick time-tick" text-anchor={at === 0 && ticks.length > 1 ? 'start' : at === ticks.length - 1 && ticks.length > 1 ? 'end' : 'middle'}>{timeLabel(x, x1 - x0)}</text>
          </>
        ))}
        {series.flatMap((line) =>
          segmentsOf(line.points).map((segment) =>
            segment.length === 1 ? (
              <circle cx={sx(segment[0]![0])} cy={sy(segment[0]![1])} r={2.5} fill={line.colour} />
            ) : (
              <polyline fill="none" stroke={line.colour} stroke-width={2} points={segment.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')} />
            ),
          ),
        )}
      </svg>
      <p class="legend">{series.map((line) => <span style={{ color: line.colour }}>■ {line.name} {format(latestOf(line))}{unit} </span>)}</p>
    </figure>
  );
}

/** The points in runs without a gap longer than `gapMs` between neighbours. */
function segments(points: [number, number][], gapMs: number | undefined): [number, number][][] {
  const runs: [number, number][][] = [];
  let run: [number, number][] = [];
  for (const point of points) {
    const previous = run[run.length - 1];
    if (Number.isNaN(point[1]) || (previous && gapMs !== undefined && point[0] - previous[0] > gapMs)) {
      if (run.length) runs.push(run);
      run = [];
    }
    if (!Number.isNaN(point[1])) run.push(point);
  }
  if (run.length) runs.push(run);
  return runs;
}

function timeLabel(ms: number, spanMs: number): string {
  const date = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  const minutes = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return spanMs >= 10 * 60_000 ? minutes : `${minutes}:${pad(date.getSeconds())}`;
}

function format(value: number | undefined): string {
  if (value === undefined) return '—';
  const size = Math.abs(value);
  return size >= 100 ? value.toFixed(0) : size >= 1 ? value.toFixed(1) : value.toFixed(2);
}
