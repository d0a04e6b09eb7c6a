import { readdirSync, readFileSync } from "node:fs";

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

/**
 * CPU time of every thread of a process in nanoseconds (schedstat), far finer than the 10 ms
 * ticks of /proc/<pid>/stat; undefined where the kernel does not keep it.
 */
function schedstatCpuMs(pid: number): number | undefined {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    return ns / 1e6;
  } catch {
    return undefined;
  }
}

export function sampleProcess(pid: number): ProcSample {
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const rchar = Number(/^rchar: (\d+)$/m.exec(io)?.[1] ?? 0);
  const precise = schedstatCpuMs(pid);
  if (precise !== undefined) return { cpuMs: precise, readBytes: rchar };
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces; fields after it are counted from its ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return { cpuMs: ((utime + stime) * 1000) / TICKS_PER_SECOND, readBytes: rchar };
}

export function delta(before: ProcSample, after: ProcSample): ProcSample {
  return { cpuMs: after.cpuMs - before.cpuMs, readBytes: after.readBytes - before.readBytes };
}
