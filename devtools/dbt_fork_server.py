"""dbt commands for the test harness, each in a child forked from one warmed-up process.

A `dbt` command spends seconds before it reads a file: importing dbt and building the JSON
schemas it validates every node against (some 9 of the 13 s of a first parse here, and most of
a command whose parse is cached). The suite runs hundreds of them. This server pays that once:
it imports dbt, parses the project once, then forks a child per command. A child is a fresh
process as far as the command can tell (its own environment, folder, standard streams, exit
code as the `dbt` executable gives it); what it shares with its siblings is only what was in
memory before the fork.

The warm-up parse runs without dbt's static parser: that is a Rust library whose state does not
survive a fork (a child that inherits it can hang), so it is first loaded in each child.

Protocol (one JSON object a line, on the server's standard input and output): a request
{"args", "env", "cwd", "out_dir"} gets the child's {"pid"}; the child writes `stdout`, `stderr`
and, when dbt has returned, `returncode` into out_dir. The caller waits for those files.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from dbt.cli.main import cli, dbtRunner

from devtools.project import PROJECT_DIR


def _run_child(request: dict[str, Any]) -> int:
    """In the forked child: the dbt command as the `dbt` executable would run it."""
    out_dir = Path(request["out_dir"])
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for name, fd in (("stdout", 1), ("stderr", 2)):
        file_fd = os.open(out_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(file_fd, fd)
        os.close(file_fd)
    sys.argv = ["dbt", *request["args"]]
    try:
        cli.main(args=request["args"], prog_name="dbt")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # what the interpreter would print before exiting 1
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    written = out_dir / "returncode.tmp"
    written.write_text(str(code))
    written.rename(out_dir / "returncode")
    return code


def serve() -> None:
    """The server's loop (python -m devtools.dbt_fork_server)."""
    requests = os.fdopen(os.dup(0), "r")
    replies = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # children read nothing, as the suite's subprocesses
    os.dup2(2, 1)  # anything the warm-up prints goes to the server's log

    with tempfile.TemporaryDirectory(prefix="dbt_fork_server_") as warm_dir:
        os.environ["DBT_TARGET_PATH"] = os.path.join(warm_dir, "target")
        os.environ["DBT_LOG_PATH"] = os.path.join(warm_dir, "logs")
        os.chdir(PROJECT_DIR)
        warm = dbtRunner().invoke(["parse", "--quiet", "--no-static-parser"])
        if not warm.success:
            print(f"dbt fork server: the warm-up parse failed: {warm.exception}", file=sys.stderr)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in requests:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            requests.close()
            replies.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = 1
            try:
                code = _run_child(request)
            finally:
                os._exit(code)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
