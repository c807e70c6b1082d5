#!/usr/bin/env python3
"""Runs the shell commands of README.md as written, from a directory outside $HOME.

Every line of every ```sh block is a command (backslash continuations joined, trailing comments
dropped). A command runs verbatim unless PLAN below says otherwise: commands with placeholders
(<id>, ID, A|B alternatives, [optional] parts) run in the concrete forms PLAN lists, and commands
that cannot run here (they install packages or services, need macOS, the ANE or a second machine)
are skipped with the reason printed. A README command PLAN does not know that has placeholders
fails the check, so new README commands are checked or explicitly excused.

The environment is a new user's: HOME and XDG_RUNTIME_DIR are fresh temp dirs, the working
directory is a temp "checkout" outside HOME (build/, examples/, client/ link to the real tree), the
daemon is started as the README says (`build/bin/anerd`, no flags) and anectl finds it by its
default socket. Each command must exit 0 (or with the code PLAN states).

usage: readme_commands_check.py SOURCE_DIR BUILD_DIR
Exit status: 0 all ran or were excused, 1 a command failed, 77 cannot run here (skip).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77

# README command (as extracted) -> how to check it. Values:
#   ("skip", reason)
#   ("run", [concrete command, ...])  placeholders {kernel}, {session}, {artifact}, {artifact6},
#                                     {probe}, {probe2}, {abs}, {port}, {log} filled in
#   ("daemon", [commands])            the daemon is stopped, these run, the plain daemon restarts
#   ("timeout", seconds)              runs verbatim until killed at `seconds`; must print something
#   ("known", [command, reason])      a known failure owned elsewhere: run, reported, not counted
# The venv's python is Debian's python3 with its site packages, so /usr/bin/python3 with the
# build tree's package on PYTHONPATH stands in for the installed package (README: "Without
# installing, the build tree holds the same package").
# mpirun as the README's local data-parallel job needs it here ("" = no Open MPI: skipped).
_MPIRUN = ("mpirun -np 2 --oversubscribe" + (" --allow-run-as-root" if os.geteuid() == 0 else "")
           if shutil.which("mpirun") else "")

PLAN = {
    "make demo": ("skip", "builds and runs its own demo (the make target)"),
    "make test": ("skip", "runs this check among the others"),
    "build/bin/anerd": ("skip", "the daemon: this check starts it exactly so, in the background"),
    "scripts/install-deps.sh": ("skip", "installs packages"),
    'cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo '
    '-DCMAKE_PREFIX_PATH="$(brew --prefix)"': ("skip", "the macOS (Homebrew) build"),
    "cmake --build build": ("skip", "the build this check runs in"),
    "scripts/ci-macos.sh": ("skip", "macOS only"),
    "build/bin/anectl service install": (
        "skip", "installs and starts a system service (launchd/systemd); --dry-run is checked"),
    "build/bin/anectl service status|start|stop|uninstall": (
        "skip", "needs the installed service"),
    "build/bin/anectl doctor --probe": ("skip", "measures the ANE: macOS with an ANE only"),
    "anectl mil check conv.mil --target ane": ("run", ["anectl mil check conv.mil --target ane"]),
    "anectl kernel compile k.mil --backend cpu --dump-passes /tmp/k-passes": (
        "run", ["anectl kernel compile k.mil --backend cpu --dump-passes {abs}/k-passes"]),
    "anectl kernel run <id> --in x=input.npy --out-dir out/ --repeat 100": (
        "run", ["anectl kernel run {kernel} --in x=input.npy --out-dir out/ --repeat 100"]),
    "anectl kernel ls | show <id> | rm <id>": (
        "run", ["anectl kernel ls", "anectl kernel show {kernel}", "anectl kernel rm {kernel}"]),
    "anectl train ls | show ID | watch ID [--from STEP] | stop ID | resume ID [--steps N] | rm ID": (
        "run", ["anectl train ls", "anectl train show {session}",
                "anectl train watch {session} --from 290",
                "anectl train resume {session} --steps 100000", "anectl train stop {session}",
                "WAIT_STOPPED {session}"]),  # rm: at the end (export needs the session)
    "anectl train export ID model.bin": ("run", ["anectl train export {session} model.bin"]),
    "anectl train export ID --format hf out/": (
        "run", ["anectl train export {session} --format hf out/"]),
    "anectl train export ID --format native ckpt.anerd": (
        "run", ["anectl train export {session} --format native ckpt.anerd"]),
    "anectl train start --data stories.txt --init ~/Qwen3-0.6B/ --steps 100": (
        "skip", "needs a downloaded Hugging Face checkpoint in ~/Qwen3-0.6B/"),
    "anectl data push stories.txt [--name N] [--kind dataset|tokenizer]": (
        "run", ["anectl data push stories.txt --name N --kind dataset"]),
    "anectl data ls [--json] | show ID | rm ID | pull ID -o FILE": (
        "run", ["anectl data ls --json", "anectl data show {artifact}",
                "anectl data pull {artifact} -o FILE"]),  # rm: at the end
    "anectl train start --data 3f2a9c --steps 300": (
        "run", ["anectl train start --data {artifact6} --steps 300"]),
    # The seed's grid takes ~40 s on the CPU backend: the same command on a small grid.
    "anectl probe peak": ("run", ["anectl probe peak --grid 64x16x4,64x16x8"]),
    "anectl probe show 20261128-1730 --svg peak.svg": (
        "run", ["anectl probe show {probe_prefix} --svg peak.svg"]),
    "anectl probe compare A_ID B_ID": ("run", ["anectl probe compare {probe} {probe2}"]),
    "anerd --listen 127.0.0.1:7443 --insecure-loopback --auth-tokens ~/.local/state/anerd/tokens": (
        "daemon", ["BACKGROUND anerd --listen 127.0.0.1:{port} --insecure-loopback "
                   "--auth-tokens ~/.local/state/anerd/tokens",
                   "anectl --host 127.0.0.1:{port} --token-file me.token kernel ls"]),
    "anerd --ui-listen 127.0.0.1:8787": (
        "daemon", ["BACKGROUND anerd --ui-listen 127.0.0.1:{port}",
                   "/usr/bin/python3 -c \"import urllib.request; "
                   "urllib.request.urlopen('http://127.0.0.1:{port}/api/info').read()\""]),
    "anectl --host 127.0.0.1:7443 --token-file me.token kernel ls": (
        "skip", "run together with the daemon line above it"),
    "anerd --listen 0.0.0.0:7443 --tls-cert server.pem --tls-key server.key "
    "--tls-client-ca client-ca.pem --auth-tokens ~/.local/state/anerd/tokens": (
        "skip", "its clients need the name mac.local; integration_remote_test runs the same "
                "mutual-TLS set-up"),
    "anectl --host mac.local:7443 --tls-ca server.pem --tls-cert laptop.pem --tls-key laptop.key "
    "--token-file laptop.token status": ("skip", "needs the name mac.local (a second machine)"),
    "anectl logs -f": ("timeout", 3),
    "anectl logs --file PATH": ("run", ["anectl logs --file {log}"]),
    "python3 -m venv --system-site-packages ~/.venvs/anerd": (
        "skip", "integration_python_package_test makes the same venv (20 s here)"),
    "~/.venvs/anerd/bin/pip install --no-build-isolation --no-index ./client/python": (
        "skip", "builds inside the source tree; integration_python_package_test installs a copy "
                "the same way (offline, --system-site-packages)"),
    "anectl train export ID --best best.bin": (
        "run", ["anectl train export {eval_session} --best best.bin"]),
    "anectl eval --session ID [--best] | --model FILE|ID [--data FILE|ID] [--batches N] [--json]": (
        "run", ["anectl eval --session {eval_session} --best",
                # FILE is read by the daemon (under its data roots); from here, by artifact id.
                "anectl model push model.bin",
                "anectl eval --model {model_artifact} --data {artifact} --batches 4 --json"]),
    "anectl data tokenize stories.txt --tokenizer tokenizer.json [--bos] [--eos] [--json]": (
        "run", ["cp {source}/tests/tokenizer/testdata/tiny_tokenizer.json tokenizer.json",
                # the test tokenizer has no bos/eos ids, so no --bos/--eos here
                "anectl data tokenize stories.txt --tokenizer tokenizer.json --json"]),
    'anectl generate --session ID --prompt "Once upon a time" --max-tokens 200': (
        "run", ['anectl generate --session {session} --prompt "Once upon a time" --max-tokens 200']),
    'anectl generate --session ID --weights live --prompt "Once"': (
        "run", ["anectl train start --data stories.txt --model tiny --steps 100000 --name live-gen",
                'anectl generate --session live-gen --weights live --prompt "Once" --max-tokens 20',
                "anectl train stop live-gen"]),
    'anectl generate --model stories15M.bin --tokenizer tokenizer.bin --prompt "Lily" --temperature 0': (
        "skip", "needs llama2.c's stories15M.bin and tokenizer.bin (downloads)"),
    "anectl generate --model MODEL_ID --tokens 1,450,1701 --json": (
        "run", ["anectl generate --model {model_artifact} --tokens 1,45,17 --max-tokens 8 --json"]),
    "anectl data synth --out /abs/path/stories.txt": (
        "run", ["anectl data synth --out {abs}/stories.txt"]),
    "~/.venvs/anerd/bin/python client/python/example.py --host unix:$XDG_RUNTIME_DIR/anerd/anerd.sock"
    " --data /abs/path/stories.txt --steps 20": (
        "run", ["PYTHONPATH=build/client/python/gen /usr/bin/python3 "
                "client/python/example.py --host unix:$XDG_RUNTIME_DIR/anerd/anerd.sock "
                "--data {abs}/stories.txt --steps 20"]),
    # Several machines (issue 24): the local 2-rank job runs where Open MPI is installed (CMake
    # then builds anerd-rank); root needs mpirun's --allow-run-as-root, which CI runs as.
    "anectl train start --data stories.txt --model tiny --steps 100 --ranks 2 --checkpoint-every 50"
    " --name dp2": ("run", ["anectl train start --data stories.txt --model tiny --steps 100 "
                            "--ranks 2 --checkpoint-every 50 --name dp2"])
    if _MPIRUN
    else ("skip", "no mpirun (Open MPI) here"),
    "anectl train watch dp2": ("run", ["anectl train watch dp2"])
    if _MPIRUN
    else ("skip", "no mpirun (Open MPI) here"),
    "anectl train start --data stories.txt --steps 1000 --ranks 4 --hostfile hosts.txt "
    "--max-restarts 3 --backend ane": ("skip", "needs Macs with an ANE named in a hostfile"),
    "printf 'model=tiny\\ndata_path=%s\\nsteps=100\\nranks=2\\ncheckpoint_every=50\\n' "
    '"$PWD/stories.txt" > spec.txt': (
        "run", ["printf 'model=tiny\\ndata_path=%s\\nsteps=100\\nranks=2\\ncheckpoint_every=50\\n' "
                '"$PWD/stories.txt" > spec.txt']),
    "mpirun -np 2 build/bin/anerd-rank --spec spec.txt --checkpoint run.ckpt --events events.jsonl":
        ("run", [_MPIRUN + " build/bin/anerd-rank --spec spec.txt --checkpoint run.ckpt "
                 "--events events.jsonl"]) if _MPIRUN else ("skip", "no mpirun (Open MPI) here"),
    "mpirun -np 2 build/bin/anerd-rank --resume run.ckpt --checkpoint run.ckpt --events events.jsonl"
    " --extra-steps 20":
        ("run", [_MPIRUN + " build/bin/anerd-rank --resume run.ckpt --checkpoint run.ckpt "
                 "--events events.jsonl --extra-steps 20"])
        if _MPIRUN else ("skip", "no mpirun (Open MPI) here"),
    # The same checkpoint on one rank (accum 2).
    "mpirun -np 1 build/bin/anerd-rank --resume run.ckpt --checkpoint run.ckpt --events events.jsonl"
    " --extra-steps 20":
        ("run", [_MPIRUN.replace("-np 2", "-np 1") + " build/bin/anerd-rank --resume run.ckpt "
                 "--checkpoint run.ckpt --events events.jsonl --extra-steps 20"])
        if _MPIRUN else ("skip", "no mpirun (Open MPI) here"),
    "mpirun -np 2 --hostfile hosts.txt build/bin/anerd-rank --spec spec.txt --backend ane "
    "--checkpoint run.ckpt": ("skip", "needs Macs with an ANE named in a hostfile"),
}
AT_END = ["anectl train rm {session}", "STOP_AND_RM_SESSIONS", "anectl data rm {artifact}"]
PLACEHOLDER = re.compile(r"<\w+>|\bID\b|\[|\||A_ID|/abs/path")


def readme_commands(path):
    """(line number, command) for each command line of the ```sh blocks."""
    out, block, pending, start = [], False, "", 0
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            text = line.rstrip("\n")
            if text.startswith("```"):
                block = not block and text.strip() == "```sh"
                continue
            if not block:
                continue
            if not pending:
                start = no
            if text.rstrip().endswith("\\"):
                pending += text.rstrip()[:-1].strip() + " "
                continue
            command = re.sub(r"(^|\s+)#.*$", "", pending + text.strip()).strip()
            pending = ""
            if command:
                out.append((start, re.sub(r"\s+", " ", command)))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Check:
    def __init__(self, source, build):
        self.source, self.build = source, build
        self.tmp = tempfile.mkdtemp(prefix="anerd-readme-")
        self.home = os.path.join(self.tmp, "home")
        self.run_dir = os.path.join(self.tmp, "run")
        self.cwd = os.path.join(self.tmp, "checkout")
        self.abs = os.path.join(self.tmp, "abs")
        for d in (self.home, self.cwd, self.abs):
            os.makedirs(d)
        os.makedirs(self.run_dir, mode=0o700)
        os.symlink(build, os.path.join(self.cwd, "build"))
        for name in ("examples", "client", "scripts", "proto"):
            os.symlink(os.path.join(source, name), os.path.join(self.cwd, name))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("XDG_", "ANERD_")) and k != "NO_COLOR"}
        env.update(HOME=self.home, XDG_RUNTIME_DIR=self.run_dir,
                   PATH=os.pathsep.join([os.path.join(build, "bin"), "/usr/bin", "/bin",
                                         env.get("PATH", "")]))
        self.env = env
        self.socket = os.path.join(self.run_dir, "anerd", "anerd.sock")
        self.daemon = None
        self.values = {"abs": self.abs, "port": str(free_port()), "source": source,
                       "log": os.path.join(self.home, ".local/state/anerd/logs/anerd.log")}
        self.failures = 0

    def shell(self, command, timeout=600):
        return subprocess.run(["bash", "-c", command], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start_daemon(self, command="build/bin/anerd"):
        log = open(os.path.join(self.tmp, "anerd.log"), "a")
        self.daemon = subprocess.Popen(["bash", "-c", "exec " + command], cwd=self.cwd,
                                       env=self.env, stdout=log, stderr=log)
        for _ in range(400):
            if self.daemon.poll() is not None:
                raise RuntimeError("the daemon exited: " + self.read_log()[-2000:])
            if os.path.exists(self.socket) and self.shell("anectl status").returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("the daemon never answered: " + self.read_log()[-2000:])

    def stop_daemon(self):
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(timeout=60)

    def read_log(self):
        with open(os.path.join(self.tmp, "anerd.log"), errors="replace") as f:
            return f.read()

    def json(self, command):
        r = self.shell("anectl --json " + command)
        return json.loads(r.stdout) if r.returncode == 0 else {}

    def fill(self, command):
        """Placeholders looked up on the daemon only when a command needs them."""
        lookups = {
            "kernel": lambda: self.json("kernel ls")["kernels"][0]["id"],
            "session": lambda: self.json("train ls")["sessions"][-1]["id"],
            "artifact": lambda: self.json("data ls")["artifacts"][0]["id"],
            "artifact6": lambda: self.fill("{artifact}")[:6],
            # The newest session when first asked for: the README's --eval-every run.
            "eval_session": lambda: max(self.json("train ls")["sessions"],
                                        key=lambda s: s["started_unix_ms"])["id"],
            "model_artifact": lambda: self.json("model ls")["artifacts"][0]["id"],
            "probe": lambda: self.json("probe ls")["results"][-1]["result_id"],
            "probe2": lambda: self.json("probe ls")["results"][0]["result_id"],
            "probe_prefix": lambda: self.unique_prefix(
                self.fill("{probe}"), [r["result_id"] for r in self.json("probe ls")["results"]]),
        }
        for name, lookup in lookups.items():
            if "{" + name + "}" in command and name not in self.values:
                self.values[name] = lookup()
        return command.format(**self.values)

    @staticmethod
    def unique_prefix(id_, ids):
        """The shortest prefix of id_ that no other id in ids starts with."""
        for n in range(1, len(id_) + 1):
            if not any(o != id_ and o.startswith(id_[:n]) for o in ids):
                return id_[:n]
        return id_

    def report(self, ok, where, command, detail=""):
        print(("ok   " if ok else "FAIL ") + where + "  " + command + detail, flush=True)
        if not ok:
            self.failures += 1

    def run(self, where, command, expect=0):
        if command == "STOP_AND_RM_SESSIONS":  # the sessions still using the pushed dataset
            for s in self.json("train ls").get("sessions", []):
                self.shell("anectl train stop " + s["id"])
                self.run(where, "WAIT_STOPPED " + s["id"])
                self.run(where, "anectl train rm " + s["id"])
            return
        if command.startswith("WAIT_STOPPED "):
            session = command.split()[1]
            for _ in range(600):
                state = self.json("train show " + session).get("session", {}).get("state")
                if state in ("stopped", "completed", "failed"):
                    return
                time.sleep(0.1)
            return self.report(False, where, command, " (never stopped)")
        began = time.monotonic()
        r = self.shell(command)
        seconds = time.monotonic() - began
        ok = r.returncode == expect
        detail = f"  [{seconds:.1f} s]" if ok else f"\n     exit {r.returncode}\n     {r.stderr.strip()[-1500:]}"
        self.report(ok, where, command, detail)

    def setup(self):
        """A user's own files the README refers to: conv.mil/k.mil, input.npy."""
        conv = os.path.join(self.source, "examples/kernels/conv1x1")
        for name in ("conv.mil", "k.mil"):
            shutil.copy(os.path.join(conv, "conv.mil"), os.path.join(self.cwd, name))
        shutil.copytree(os.path.join(conv, "weights"), os.path.join(self.cwd, "weights"))
        subprocess.run(["/usr/bin/python3", "-c",
                        "import numpy as np; np.save('input.npy', "
                        "np.random.rand(1, 64, 1, 256).astype(np.float16))"],
                       cwd=self.cwd, check=True)

    def main(self):
        self.setup()
        self.start_daemon()
        try:
            for line, command in readme_commands(os.path.join(self.source, "README.md")):
                where = f"README.md:{line}"
                plan = PLAN.get(command)
                if plan is None:
                    if PLACEHOLDER.search(command):
                        self.report(False, where, command, " (placeholders: add it to PLAN)")
                        continue
                    plan = ("run", [command])
                kind, what = plan
                if kind == "skip":
                    print(f"skip {where}  {command}  ({what})", flush=True)
                elif kind == "timeout":
                    try:
                        r = self.shell(command, timeout=what)
                        self.report(False, where, command, f" (ended: exit {r.returncode})")
                    except subprocess.TimeoutExpired as e:
                        self.report(bool(e.stdout), where, command, " (followed until killed)")
                elif kind == "known":
                    r = self.shell(self.fill(what[0]))
                    print(f"{'ok  ' if r.returncode == 0 else 'known'} {where}  {command}"
                          f"  ({'passes now: make it a plain run' if r.returncode == 0 else what[1]})",
                          flush=True)
                elif kind == "daemon":
                    self.stop_daemon()
                    self.start_daemon(self.fill(what[0].split(" ", 1)[1]))
                    for c in what[1:]:
                        self.run(where, self.fill(c))
                    self.stop_daemon()
                    self.start_daemon()
                else:
                    for c in what:
                        self.run(where, self.fill(c))
            for c in AT_END:
                self.run("(clean-up)", self.fill(c))
        finally:
            self.stop_daemon()
        if self.failures:
            print(f"{self.failures} README command(s) failed; daemon log:\n" +
                  self.read_log()[-3000:])
            return 1
        shutil.rmtree(self.tmp, ignore_errors=True)
        return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source, build = (os.path.abspath(p) for p in sys.argv[1:])
    if not os.access(os.path.join(build, "bin", "anectl"), os.X_OK):
        print("skipped: no build/bin/anectl")
        sys.exit(SKIP)
    sys.exit(Check(source, build).main())
