/** A small line chart in inline SVG: a few series over time, an axis label, no library. */
export interface Series {
  name: string;
  points: [number, number][];
  colour: string;
}

export function LineChart({ title, series, unit }: { title: string; series: Series[]; unit: string }) {
  const width = 320;
  const height = 120;
  const pad = 28;
  const all = series.flatMap((line) => line.points);
  if (all.length === 0) return <figure class="chart"><figcaption>{title}</figcaption><p>No data yet.</p></figure>;
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const top = Math.max(...ys, 0) || 1;
  const sx = (x: number) => pad + (x1 === x0 ? (width - pad) / 2 : ((x - x0) / (x1 - x0)) * (width - pad - 4));
  const sy = (y: number) => height - 16 - (y / top) * (height - 24);
  const latest = series.map((line) => `${line.name} ${format(line.points[line.points.length - 1]?.[1])}${unit}`).join(', ');
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`${title}: latest ${latest}`}>
        <line x1={pad} y1={sy(0)} x2={width} y2={sy(0)} class="axis" />
        <text x={2} y={sy(top) + 4} class="tick">{format(top)}</text>
        <text x={2} y={sy(0)} class="tick">0</text>
        {series.map((line) => (
          <polyline fill="none" stroke={line.colour} stroke-width={2} points={line.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')} />
        ))}
        {series.map((line) => line.points.length === 1 && <circle cx={sx(line.points[0]![0])} cy={sy(line.points[0]![1])} r={3} fill={line.colour} />)}
      </svg>
      <p class="legend">{series.map((line) => <span style={{ color: line.colour }}>■ {line.name} {format(line.points[line.points.length - 1]?.[1])}{unit} </span>)}</p>
    </figure>
  );
}

function format(value: number | undefined): string {
  if (value === undefined) return '—';
  return value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(1) : value.toFixed(2);
}
