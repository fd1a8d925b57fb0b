"""What every Python benchmark records beside its numbers: the machine and the git commit."""
import datetime
import json
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit():
    """HEAD, with "-dirty" when tracked files differ from it."""
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine():
    return {"host": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "load_average": os.getloadavg(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}


def write_result(benchmark, body, info, out=None):
    """Writes {benchmark, commit, date, machine (info: taken before the runs), **body} as
    bench/results/<benchmark>-<host>.json (or `out`) and prints the path."""
    doc = {"benchmark": benchmark, "commit": git_commit(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": info, **body}
    path = out or os.path.join(ROOT, "bench", "results", f"{benchmark}-{info['host']}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(path)
    return path
