"""A redraw is all or nothing: figures are drawn into a staging folder beside the figures folder,
which then takes the figures folder's place in two renames, with Ctrl-C and SIGTERM held off
between them. A redraw that fails or is interrupted while drawing leaves the old figures and
their index as they were."""

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path


@contextlib.contextmanager
def staging(folder):
    """An empty folder on the same file system as `folder`, removed on the way out unless
    publish() has put it in `folder`'s place."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-new-"))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(stage, folder, owned):
    """Put the staged drawing in `folder`'s place. Every file of the old folder that the drawing
    does not own (`owned(relative path)` is false: notes written by hand, figures this drawing did
    not redraw) and did not draw again is carried over first."""
    folder = Path(folder)
    if folder.is_dir():
        carry_over(folder, stage, owned)
    os.chmod(stage, folder.stat().st_mode & 0o777 if folder.is_dir() else 0o755)  # mkdtemp made it private
    with signals_held():
        if folder.exists():
            old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-old-"))
            os.replace(folder, old / folder.name)
            os.replace(stage, folder)
            shutil.rmtree(old)
        else:
            os.replace(stage, folder)


def carry_over(folder, stage, owned):
    """Files, links (as links) and empty folders; a link to a folder is not followed."""
    for top, folders, files in os.walk(folder):
        top = Path(top)
        links = [name for name in folders if (top / name).is_symlink()]
        if not folders and not files and top != folder:
            (stage / top.relative_to(folder)).mkdir(parents=True, exist_ok=True)
        for path in sorted(top / name for name in files + links):
            relative = path.relative_to(folder)
            if owned(relative) or os.path.lexists(stage / relative):
                continue
            (stage / relative).parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                os.symlink(os.readlink(path), stage / relative)
            else:
                shutil.copy2(path, stage / relative)


@contextlib.contextmanager
def signals_held():
    """Ctrl-C and SIGTERM wait until the block is done (where the platform can hold signals)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)

