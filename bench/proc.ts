import { readFileSync } from "node:fs";

/**
 * A process's own counters from /proc: CPU time (user + system) and bytes it read through
 * read-like system calls (sockets included: for the broker, its gRPC and Redis traffic).
 */
export interface ProcSample {
  cpuMs: number;
  readBytes: number;
}

// USER_HZ is 100 on Linux for every architecture Node supports.
const TICKS_PER_SECOND = 100;

export function sampleProcess(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces; fields after it are counted from its ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const rchar = Number(/^rchar: (\d+)$/m.exec(io)?.[1] ?? 0);
  return { cpuMs: ((utime + stime) * 1000) / TICKS_PER_SECOND, readBytes: rchar };
}

export function delta(before: ProcSample, after: ProcSample): ProcSample {
  return { cpuMs: after.cpuMs - before.cpuMs, readBytes: after.readBytes - before.readBytes };
}
