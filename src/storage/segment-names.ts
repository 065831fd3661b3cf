// Ratis segment file names: closed `log_<first>-<last>`, open `log_inprogress_<first>`.

const CLOSED = /^log_(\d+)-(\d+)$/;
const OPEN = /^log_inprogress_(\d+)$/;

export interface SegmentName {
  readonly startIndex: number;
  /** Last index for a closed segment; undefined for the open one. */
  readonly endIndex: number | undefined;
}

export function closedSegmentName(startIndex: number, endIndex: number): string {
  if (endIndex < startIndex) throw new RangeError(`closed segment ${startIndex}-${endIndex} would be empty`);
  return `log_${startIndex}-${endIndex}`;
}

export function openSegmentName(startIndex: number): string {
  return `log_inprogress_${startIndex}`;
}

function parseIndex(text: string, fileName: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`segment file ${fileName}: index ${text} is not a safe integer`);
  return value;
}

/** Parses a segment file name; returns undefined for files that are not segments. */
export function parseSegmentName(fileName: string): SegmentName | undefined {
  const closed = CLOSED.exec(fileName);
  if (closed) {
    const startIndex = parseIndex(closed[1]!, fileName);
    const endIndex = parseIndex(closed[2]!, fileName);
    if (endIndex < startIndex) throw new Error(`segment file ${fileName}: last index below first index`);
    return { startIndex, endIndex };
  }
  const open = OPEN.exec(fileName);
  if (open) return { startIndex: parseIndex(open[1]!, fileName), endIndex: undefined };
  return undefined;
}
