"""``tipline backup``, ``tipline restore``, ``tipline metrics serve``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click


def _bar(label: str) -> Any:
    """A click progress bar driven by (done, total) callbacks."""

    class _Bar:
        def __init__(self) -> None:
            self.bar: Any = None
            self.done = 0

        def __call__(self, done: int, total: int) -> None:
            if self.bar is None:
                self.bar = click.progressbar(length=max(total, 1), label=label,
                                             file=sys.stderr)
                self.bar.__enter__()
            self.bar.update(max(0, done - self.done))
            self.done = done

        def close(self) -> None:
            if self.bar is not None:
                self.bar.__exit__(None, None, None)
                self.bar = None
                self.done = 0

    return _Bar()


def register(main: click.Group) -> None:
    from tipline.cli import _die, _settings, fail_cleanly

    @main.command("backup")
    @click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
    @click.option("--key-file-to", "key_out", type=click.Path(dir_okay=False, path_type=Path),
                  default=None,
                  help="Also copy the key file here (never beside the dump; keep it apart).")
    def backup_cmd(folder: Path, key_out: Path | None) -> None:
        """Write a consistent database dump and its manifest into FOLDER (new or empty)."""
        from tipline.ops.backup import BackupError, backup

        bar = _bar("dumping")
        with fail_cleanly():
            settings = _settings()
            try:
                started = time.monotonic()
                manifest = backup(settings, folder, key_out=key_out, progress=bar)
            except BackupError as exc:
                bar.close()
                _die(str(exc))
            bar.close()
        rows = sum(manifest.counts.values())
        click.echo(f"backup written to {folder.resolve()} ({manifest.database}, "
                   f"{len(manifest.counts)} tables, {rows} rows, schema "
                   f"{','.join(manifest.schema_revisions)}, {time.monotonic() - started:.1f} s)")
        if key_out:
            click.echo(f"key file copied to {key_out} (mode 0600): store it apart from the dump")
        else:
            click.echo("the key file was NOT included (use --key-file-to): without it the "
                       "dump's tips cannot be read")

    @main.command("restore")
    @click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--key-file", "key_file", type=click.Path(exists=True, dir_okay=False,
                                                            path_type=Path), default=None,
                  help="The backed-up key file, copied to TIPLINE_KEY_FILE (must not exist).")
    def restore_cmd(folder: Path, key_file: Path | None) -> None:
        """Restore FOLDER into an empty installation, then check it (exit 1 on a problem)."""
        from tipline.ops.backup import BackupError, restore

        bar = _bar("checking and restoring")
        with fail_cleanly():
            settings = _settings()
            try:
                report = restore(settings, folder, key_file=key_file, progress=bar)
            except BackupError as exc:
                bar.close()
                _die(str(exc))
            bar.close()
        m = report.manifest
        click.echo(f"restored a backup of {m.created_at} (tipline {m.tipline_version}, "
                   f"{sum(m.counts.values())} rows)")
        click.echo(f"row counts: {'match the manifest' if report.counts_match else 'DIFFER'}")
        click.echo(f"schema: {report.schema}")
        click.echo(f"audit log: {'OK' if report.audit_ok else 'BROKEN'}, "
                   f"{report.audit_checked} entries verified")
        k = report.keys
        click.echo(f"data keys: {k.checked} checked, {k.kek_slots} key-file slots open, "
                   f"{k.sealed_slots} sealed slots well formed, {len(k.bad)} bad")
        for problem in report.problems:
            click.echo(f"PROBLEM: {problem}", err=True)
        sys.exit(0 if report.ok else 1)

    @main.group("metrics")
    def metrics_group() -> None:
        """Prometheus metrics."""

    @metrics_group.command("serve")
    @click.option("--bind", default="127.0.0.1:9108", show_default=True)
    def metrics_serve(bind: str) -> None:
        """Serve the metrics alone (gunicorn's master serves them in production)."""
        from tipline.ops.endpoint import serve_in_thread

        with fail_cleanly():
            settings = _settings()
            server = serve_in_thread(settings, bind)
        click.echo(f"metrics on http://{bind}/metrics (Ctrl+C stops)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            server.shutdown()
