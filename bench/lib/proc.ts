// CPU time and memory of a process read from outside it (Linux /proc), so the benchmark measures
// the nodes (ours and etcd's alike) without any help from them. The parse functions are pure and
// unit-tested; the readers return undefined for a process that is gone.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
let clockTicks: number | undefined;
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      clockTicks = Number.isSafeInteger(n) && n > 0 ? n : 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export interface CpuTicks {
  readonly utime: number;
  readonly stime: number;
}

/**
 * utime and stime (fields 14 and 15) of a /proc/<pid>/stat line. The command name (field 2) is in
 * parentheses and may itself hold spaces and parentheses, so fields are counted after the last ')'.
 */
export function parseProcStat(text: string): CpuTicks {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error(`not a /proc/<pid>/stat line: ${JSON.stringify(text.slice(0, 80))}`);
  const fields = text.slice(close + 2).trim().split(/\s+/);
  // fields[0] is field 3 (state), so field n is fields[n - 3].
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isSafeInteger(utime) || !Number.isSafeInteger(stime)) throw new Error(`cannot read utime/stime from /proc/<pid>/stat: ${JSON.stringify(text.slice(0, 200))}`);
  return { utime, stime };
}

export interface MemoryStatus {
  /** Resident set size now (VmRSS). */
  readonly rssBytes: number;
  /** Peak resident set size (VmHWM). */
  readonly peakRssBytes: number;
  /** Anonymous resident memory (RssAnon): heap and stacks, without mapped files. */
  readonly anonBytes: number;
  /** File-backed resident memory (RssFile), e.g. LevelDB's mapped tables and the executable. */
  readonly fileBytes: number;
}

/** The memory lines of /proc/<pid>/status (values in kB). A missing line reads as 0. */
export function parseProcStatus(text: string): MemoryStatus {
  const kb = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text);
    return m === null ? 0 : Number(m[1]) * 1024;
  };
  return { rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM'), anonBytes: kb('RssAnon'), fileBytes: kb('RssFile') };
}

/** CPU seconds (user + system) the process has used so far; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const t = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return (t.utime + t.stime) / clockTicksPerSecond();
  } catch {
    return undefined;
  }
}

export function memoryStatus(pid: number): MemoryStatus | undefined {
  try {
    return parseProcStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return undefined;
  }
}

export interface MachineCpu {
  /** Jiffies spent running something (user, nice, system, irq, softirq), all CPUs together. */
  readonly busy: number;
  readonly total: number;
}

/** The aggregate `cpu` line of /proc/stat. */
export function parseMachineCpu(text: string): MachineCpu {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) throw new Error('no aggregate cpu line in /proc/stat');
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
  const busy = user + nice + system + irq + softirq;
  return { busy, total: busy + idle + iowait + steal };
}

/** Machine-wide busy CPU seconds so far (all cores), or undefined off Linux. */
export function machineBusySeconds(): number | undefined {
  try {
    return parseMachineCpu(readFileSync('/proc/stat', 'utf8')).busy / clockTicksPerSecond();
  } catch {
    return undefined;
  }
}
