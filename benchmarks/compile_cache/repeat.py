"""Run a benchmark script N times in fresh processes; report min/median of its RESULT fields plus the
process wall time (spawn to exit, incl. interpreter start/teardown) and child CPU time (rusage user+sys).

usage: repeat.py N script.py [args...]
"""
import json, os, statistics, subprocess, sys, time
n, cmd = int(sys.argv[1]), [sys.executable] + sys.argv[2:]
rows = []
for i in range(n):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    res = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
    res["process_wall"] = round(wall, 3)
    res["process_cpu"] = round(ru.ru_utime + ru.ru_stime, 3)
    rows.append(res)
    print(json.dumps(res), flush=True)
keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float)) and not isinstance(rows[0][k], bool)]
summary = {k: {"min": min(r[k] for r in rows), "median": round(statistics.median(r[k] for r in rows), 3)} for k in keys}
with open("/proc/loadavg") as f:
    load = f.read().split()[0]
print("SUMMARY " + json.dumps({"n": n, "cmd": " ".join(sys.argv[2:]), "loadavg_end": load, **summary}))
