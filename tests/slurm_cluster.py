"""A throw-away single-node Slurm cluster on this machine: munged, slurmctld and slurmd (Debian:
`apt-get install slurmctld slurmd slurm-client munge`), run as root, with everything they
write (slurm.conf, the munge key and socket, state, spool, logs) in one temporary folder.

    reason = unavailable()          # None, or why there can be no cluster here
    with SlurmCluster() as cluster:  # started, and stopped (every daemon) on leaving
        subprocess.run(["sbatch", ...], env=cluster.environ())

The node is this machine (its hostname, CPUs and memory, as `slurmd -C` reports them), in one
partition, `debug`; accounting is off (no slurmdbd), as on a cluster without it. Nothing is
written outside the folder: the daemons get the config with -f, clients with SLURM_CONF, and
munged its own key and socket; a system-wide Slurm or munge set-up is neither used nor
touched. The daemons are idle but for the jobs (about 0.03 CPU-seconds a minute). By hand (a
cluster to try `sar-prompt run --slurm` on):

    python tests/slurm_cluster.py     # prints the `export SLURM_CONF=...` line; Ctrl-C stops it
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "srun", "sinfo")
PACKAGES = "slurmctld slurmd slurm-client munge"
PARTITION = "debug"
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10
# `scontrol show job`'s fields that explain a job's wait or end (EligibleTime: its begin time)
JOB_FIELDS = ("JobState", "Reason", "Restarts", "Priority", "SubmitTime", "EligibleTime",
              "StartTime", "EndTime", "ExitCode", "NodeList")
KILL_WAIT_S = 10  # SIGTERM to SIGKILL when a job is cancelled or requeued
# after SIGKILL, how long a step may take to end before slurmd calls it unkillable and drains
# the node ("Kill task failed"); a loaded machine can be slow to reap (default 60 s)
UNKILLABLE_STEP_TIMEOUT_S = 180


def unavailable():
    """Why no cluster can be started here (not root, a program missing), or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "starting a Slurm cluster needs root"
    missing = [p for p in DAEMONS + CLIENTS if shutil.which(p) is None]
    if missing:
        return (f"Slurm is not installed ({', '.join(missing)} not on PATH); on Debian: "
                f"apt-get install -y {PACKAGES}")
    return None


def _free_ports(n):
    ports = set()
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.add(s.getsockname()[1])
    return sorted(ports)


def _node_line():
    """`NodeName=<host> CPUs=... RealMemory=...`: this machine, as slurmd sees it."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    return next(line for line in out.splitlines() if line.startswith("NodeName="))


class ClusterError(RuntimeError):
    """The cluster did not start; the message holds the daemons' logs."""


class SlurmCluster:
    """One node, one partition, no accounting. `folder`: where its files go (default: a new
    temporary folder, removed on stop). Extra slurm.conf lines in `conf`."""

    def __init__(self, folder=None, conf=()):
        self._own_folder = folder is None
        # a short path: munge's socket path must fit in 108 bytes
        self.folder = Path(folder or tempfile.mkdtemp(prefix="sar-slurm-"))
        self.extra_conf = list(conf)
        self.procs = {}
        self.node = None

    # -- files ---------------------------------------------------------------------------
    @property
    def conf_path(self):
        return self.folder / "slurm.conf"

    @property
    def munge_socket(self):
        return self.folder / "run" / "munge.sock"

    def environ(self, base=None):
        """The environment for Slurm's clients (sbatch, squeue, ...) to talk to this cluster."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf_path)
        return env

    def _write_files(self):
        f = self.folder
        f.mkdir(parents=True, exist_ok=True)
        # munged wants its socket's folder (and the folders above) open to everyone and
        # its key private
        os.chmod(f, 0o755)
        for name, mode in (("run", 0o755), ("munge", 0o700), ("state", 0o700),
                           ("spool", 0o755), ("log", 0o755)):
            (f / name).mkdir(exist_ok=True)
            os.chmod(f / name, mode)
        key = f / "munge" / "munge.key"
        key.write_bytes(os.urandom(128))
        os.chmod(key, 0o600)
        (f / "plugstack.conf").write_text("")  # not the system's /etc/slurm/plugstack.conf
        node = _node_line()
        self.node = node.split()[0].split("=", 1)[1]
        ctld_port, slurmd_port = _free_ports(2)
        lines = [
            "ClusterName=sartest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
            f"PlugStackConfig={f / 'plugstack.conf'}",
            "MailProg=/bin/true",
            # no cgroups needed (containers), nothing sampled in the background
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/builtin",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "ReturnToService=2",
            f"KillWait={KILL_WAIT_S}",
            f"UnkillableStepTimeout={UNKILLABLE_STEP_TIMEOUT_S}",
            *self.extra_conf,
            f"{node} NodeAddr=127.0.0.1 State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf_path.write_text("\n".join(lines) + "\n")

    # -- daemons -------------------------------------------------------------------------
    def _spawn(self, name, argv):
        out = open(self.folder / "log" / f"{name}.out", "wb")
        try:
            # a session of its own: a Ctrl-C meant for the tests does not reach it
            self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL,
                                                start_new_session=True,
                                                preexec_fn=_stop_with_parent)
        finally:
            out.close()

    def logs(self, tail=15):
        """The last `tail` lines of every daemon's output, for an error message."""
        parts = []
        for path in sorted((self.folder / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def _wait_for(self, what, ready):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise ClusterError(f"{', '.join(dead)} stopped while starting:\n{self.logs()}")
            if ready():
                return
            time.sleep(0.2)
        raise ClusterError(f"{what} not ready after {START_TIMEOUT_S} s:\n{self.logs()}")

    def _idle(self):
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.environ(),
                             capture_output=True, text=True, timeout=10)
        return out.returncode == 0 and out.stdout.strip() == "idle"

    def start(self):
        f, conf = self.folder, str(self.conf_path)
        try:
            self._write_files()
            self._spawn("munged", ["munged", "--foreground", f"--socket={self.munge_socket}",
                                   f"--key-file={f / 'munge' / 'munge.key'}",
                                   f"--pid-file={f / 'run' / 'munged.pid'}",
                                   f"--seed-file={f / 'munge' / 'munged.seed'}",
                                   f"--log-file={f / 'log' / 'munged.log'}",
                                   "--num-threads=1"])
            self._wait_for("munged", self.munge_socket.exists)
            self._spawn("slurmctld", ["slurmctld", "-D", "-f", conf])
            self._spawn("slurmd", ["slurmd", "-D", "-f", conf, "-N", self.node])
            self._wait_for("the node", self._idle)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Cancel every job, stop every daemon (SIGTERM, then SIGKILL) and any job process
        left; remove the folder if it was ours."""
        if self.procs.get("slurmctld") is not None and self.procs["slurmctld"].poll() is None:
            self._cancel_jobs()
        for name in reversed(list(self.procs)):
            proc = self.procs.pop(name)
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        self._kill_leftovers()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _cancel_jobs(self):
        """Cancel every job and wait (KillWait and a margin at most) until none runs."""
        try:
            ids = self.run("squeue", "-h", "-o", "%A", check=False).stdout.split()
            if ids:
                self.run("scancel", *sorted(set(ids)), check=False)
            deadline = time.monotonic() + KILL_WAIT_S + STOP_TIMEOUT_S
            while time.monotonic() < deadline and self.run("squeue", "-h", check=False).stdout:
                time.sleep(0.5)
        except (OSError, subprocess.SubprocessError):
            pass  # the controller is gone: _kill_leftovers ends what is left

    def _kill_leftovers(self):
        """Job processes outlive slurmd by design (slurmstepd is a daemon): end those of this
        cluster, found by the SLURM_CONF slurmd gave them."""
        mark = f"SLURM_CONF={self.conf_path}".encode()
        for pid in _pids():
            if pid == os.getpid():
                continue
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            job = any(e.startswith(b"SLURM_JOB_ID=") for e in environ)
            if mark in environ and (job or cmdline.startswith(b"slurmstepd")):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- jobs ----------------------------------------------------------------------------
    def run(self, *argv, timeout=30, check=True):
        """Run a Slurm client command (scontrol, squeue, ...) against this cluster."""
        return subprocess.run(list(argv), env=self.environ(), capture_output=True, text=True,
                              timeout=timeout, check=check)

    def job(self, job_id):
        """`scontrol show job`'s fields of a job (JobState, Restarts, ...), or {} when the
        controller no longer knows it."""
        out = self.run("scontrol", "show", "job", "--oneliner", str(job_id), check=False)
        fields = (word.split("=", 1) for word in out.stdout.split() if "=" in word)
        return dict(fields) if out.returncode == 0 else {}

    def node_state(self):
        """The node's state and reason as sinfo words them (`idle`, `drained`, `down*`, ...;
        the reason, e.g. `Kill task failed`, or `none`), or sinfo's error."""
        out = self.run("sinfo", "-h", "-N", "-o", "%T|%E", check=False)
        state, _, reason = out.stdout.strip().partition("|")
        return (state, reason) if out.returncode == 0 else ("?", out.stderr.strip())

    def describe(self, job_id):
        """A job's fields that say why it waits or ended, the node's state and the daemons'
        logs: for a failure message."""
        job = self.job(job_id)
        fields = " ".join(f"{k}={job.get(k)}" for k in JOB_FIELDS) if job else "(unknown)"
        node = self.run("scontrol", "show", "node", "--oneliner", check=False).stdout
        flags = next((w for w in node.split() if w.startswith("State=")), "State=?")
        state, reason = self.node_state()
        return (f"job {job_id}: {fields}\nnode {self.node}: {state} ({flags}), reason: "
                f"{reason}\n{self.logs(25)}")

    def jobs(self):
        """The ids of every job the controller holds, finished ones included."""
        return self.run("squeue", "-h", "-t", "all", "-o", "%i").stdout.split()


try:  # looked up here: between fork and exec only the C call is made
    import ctypes

    _PRCTL = ctypes.CDLL(None).prctl
except (ImportError, OSError, AttributeError):
    _PRCTL = None


def _stop_with_parent():
    """In the daemon, before it starts: SIGTERM when the process that started it dies, so a
    killed test run leaves no daemon behind (Linux's PR_SET_PDEATHSIG)."""
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGTERM))


def _pids():
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def main():
    reason = unavailable()
    if reason:
        print(f"no cluster: {reason}", file=sys.stderr)
        return 2
    # stop cleanly on Ctrl-C and on kill (SIGINT is ignored in a background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with SlurmCluster(sys.argv[1] if len(sys.argv) > 1 else None) as cluster:
        print(f"a Slurm cluster is running (node {cluster.node}, partition {PARTITION}); in "
              f"another shell:\n  export SLURM_CONF={cluster.conf_path}\nCtrl-C stops it.",
              flush=True)
        try:
            while all(p.poll() is None for p in cluster.procs.values()):
                time.sleep(1)
            print(f"a daemon stopped:\n{cluster.logs()}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
