// Converts vega-datasets' flights-3m.parquet to the CSV that `apxserve ingest` reads.
// Usage: node convert.mjs IN.parquet OUT.csv
// Columns written: dep_time (YYYY-MM-DD HH:MM, local departure time), delay (arrival delay,
// minutes), distance (miles), origin, dest. Writes OUT.csv.tmp and renames it when complete,
// so an interrupted run never leaves a truncated CSV behind.
import fs from 'node:fs';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

const [inPath, outPath] = process.argv.slice(2);
if (!inPath || !outPath) {
  console.error('usage: node convert.mjs IN.parquet OUT.csv');
  process.exit(2);
}
const file = await asyncBufferFromFile(inPath);
const metadata = await parquetMetadataAsync(file);
const total = Number(metadata.num_rows);
const tmp = outPath + '.tmp';
const out = fs.openSync(tmp, 'w');
fs.writeSync(out, 'dep_time,delay,distance,origin,dest\n');

const pad = (n) => (n < 10 ? '0' + n : '' + n);
const fmt = (d) => {
  // Timestamps are local departure times stored without a zone: print the UTC fields as-is.
  const t = d instanceof Date ? d : new Date(Number(d) / 1000);
  return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())} ` +
         `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}`;
};

let rowStart = 0;
let done = 0;
for (const rg of metadata.row_groups) {
  const rowEnd = rowStart + Number(rg.num_rows);
  const rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd, compressors });
  const lines = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    lines[i] = `${fmt(r.date)},${r.delay},${r.distance},${r.origin},${r.destination}`;
  }
  fs.writeSync(out, lines.join('\n') + '\n');
  done += rows.length;
  rowStart = rowEnd;
  process.stderr.write(`\rconvert: ${done}/${total} rows (${Math.round(100 * done / total)}%)`);
}
fs.closeSync(out);
fs.renameSync(tmp, outPath);
process.stderr.write(`\nconvert: wrote ${done} rows to ${outPath}\n`);
