"""The runner's terminal: one line when a run starts and one when it ends on stdout and,
when the terminal is interactive, one progress bar per worker on stderr (tqdm), fed by the
runs' progress events (sar_prompt/runs/progress.py)."""
import sys
import threading


# -- the terminal ----------------------------------------------------------------------------
class Console:
    """Run lines on stdout and, when interactive, one progress bar per worker on stderr."""

    def __init__(self, total, slots=1, progress=None, out=None):
        self.out = out or sys.stdout
        self.total, self.count = total, 0
        self.lock = threading.Lock()
        self.show_bars = sys.stderr.isatty() if progress is None else bool(progress)
        self.slots = slots
        self.bars = {}

    def next_index(self):
        with self.lock:
            self.count += 1
            return f"[{self.count}/{self.total}]"

    def line(self, text):
        with self.lock:
            if self.bars:
                from tqdm import tqdm

                tqdm.write(text, file=self.out)
            else:
                print(text, file=self.out, flush=True)

    def _bar(self, slot, run):
        from tqdm import tqdm

        bar = self.bars.get(slot)
        if bar is None:
            bar = tqdm(total=1, position=slot, leave=False, file=sys.stderr, dynamic_ncols=True,
                       bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
            self.bars[slot] = bar
        if getattr(bar, "_run", None) is not run:
            bar._run, bar._kind = run, None
        return bar

    def progress(self, slot, run, event):
        """Show a progress event of `run` (see progress.py) on its worker's bar."""
        if not self.show_bars:
            return
        with self.lock:
            bar = self._bar(slot, run)
            if event.get("kind") == "train":
                per_epoch = max(1, int(event.get("num_batches") or 1))
                total = per_epoch * max(1, int(event.get("max_epoch") or 1))
                done = int(event.get("epoch", 0)) * per_epoch + int(event.get("batch", 0))
                loss = event.get("loss")
                postfix = f"epoch {event.get('epoch', 0) + 1}/{event.get('max_epoch')}" + (
                    f" loss {loss:.3f}" if isinstance(loss, (int, float)) else "")
            else:
                total, done = max(1, int(event.get("num_batches") or 1)), int(event.get("batch", 0))
                postfix = "evaluating"
            if bar._kind != event.get("kind") or bar.total != total:
                # a new phase (or a resumed run): restart the clock, count earlier work as done
                bar.reset(total=total)
                bar.n = bar.last_print_n = bar.initial = max(0, done - 1)
                bar._kind = event.get("kind")
            bar.set_description_str(f"{run.label}: {postfix}", refresh=False)
            bar.update(max(0, done - bar.n))

    def finish_bar(self, slot):
        with self.lock:
            bar = self.bars.pop(slot, None)
            if bar is not None:
                bar.close()

    def close(self):
        for slot in list(self.bars):
            self.finish_bar(slot)
