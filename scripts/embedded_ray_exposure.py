"""What the embedded Ray (the default executor) listens on, and whether a caller without its
private token gets in. Prints one line per listening socket of this process and its children
(from `ss -ltnpH`), then the answers of the runtime-env agent to requests without a token, with a
wrong one, and with the run's own token. Run: python scripts/embedded_ray_exposure.py"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.request

import ray

from actbench.runner.ray import RayExecutor


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo += children.get(pid, [])
    return out


def main() -> None:
    ex = RayExecutor(num_cpus=1)
    try:
        print(ex.describe())
        ray.get(ray.remote(lambda: None).remote())  # one worker up
        mine = descendants(os.getpid())
        for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines():
            if {int(p) for p in re.findall(r"pid=(\d+)", line)} & mine:
                fields = line.split()
                name = re.search(r'\(\("([^"]+)"', line)
                print(f"listening {fields[3]:>24}  {name.group(1) if name else '?'}")
        node = ray.nodes()[0]
        url = f"http://{node['NodeManagerAddress']}:{node['RuntimeEnvAgentPort']}/get_or_create_runtime_env"
        for label, auth in (("no token", None), ("wrong token", "Bearer x"), ("this run's token", f"Bearer {os.environ['RAY_AUTH_TOKEN']}")):
            req = urllib.request.Request(url, data=b"", method="POST", headers={"Authorization": auth} if auth else {})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    code = r.status
            except urllib.error.HTTPError as e:
                code = e.code
            print(f"runtime-env agent, {label}: HTTP {code}")
    finally:
        ex.shutdown()


if __name__ == "__main__":
    main()
