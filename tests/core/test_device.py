import subprocess
import sys
import textwrap

import torch

from conftest import REPO
from photostyle.core.device import claim_slot, select_device


def test_cpu_and_auto_without_gpu():
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert select_device("auto").type == "cpu"


def test_concurrent_jobs_claim_different_gpu_slots(tmp_path):
    """Two processes holding slots get different ones; a slot frees when its holder exits."""
    holder = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO / 'workflow')!r})
        from photostyle.core.device import claim_slot
        print(claim_slot(2, {str(tmp_path)!r}), flush=True)
        time.sleep(30)
    """)
    first = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "0"
        assert claim_slot(2, tmp_path, timeout_s=5) == 1  # slot 0 is held by the other process
    finally:
        first.kill()
        first.wait()
    assert claim_slot(3, tmp_path, timeout_s=5) == 0  # freed by the holder's exit
