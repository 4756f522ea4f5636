"""Does averaging each face over small shifts (beside its mirror image) pay on new people?

Scores one model (default: the shipped one, its mirror setting; ``--prior uniform``: as it
ships) on the faces ``calibration_shift.py`` loads (FER-2013 test; every face of CK+48 and JAFFE; the
CREMA-D sample's frames) with its logits averaged over shifted copies of each crop (edges
replicated; each copy also mirrored when the file mirrors): none, the 4 neighbours at 1
pixel, at 2 pixels, and the 3x3 grid at 2 pixels. Prints accuracy per dataset, the paired
difference to no shift and an exact McNemar p. A measurement only: the package does not
shift at inference (docs/results-fer2013.md, "Shift averaging at inference").

Run: ``.venv/bin/python benchmarks/shift_averaging.py [--model FILE] [--prior uniform]``
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from calibration_shift import faces, model_and_config
from mirror_averaging import mcnemar_p
from pathnet_fer.formats.loaded_model import CPU_ROWS_PER_PASS, LoadedModel

SHIFTS = {
    "none": [(0, 0)],
    "4 x 1 px": [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)],
    "4 x 2 px": [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)],
    "3x3 grid, 2 px": [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2)],
}


@dataclass
class ShiftAveraged(LoadedModel):
    """A loaded model whose logits are averaged over ``offsets`` (dy, dx) shifted copies."""

    offsets: tuple[tuple[int, int], ...] = ((0, 0),)

    @torch.inference_mode()
    def logits(self, crops):
        x = self.features(crops)
        s, c = self.input.size, self.input.channels
        pad = max(max(abs(dy), abs(dx)) for dy, dx in self.offsets)  # room for every shift
        images = x.view(len(x), s, s, c).permute(0, 3, 1, 2)
        padded = F.pad(images, (pad,) * 4, mode="replicate")
        views = []
        for dy, dx in self.offsets:
            view = padded[:, :, pad + dy : pad + dy + s, pad + dx : pad + dx + s]
            views += [view, view.flip(3)] if self.mirror else [view]
        total, rows = 0, range(0, len(x), CPU_ROWS_PER_PASS)
        for view in views:
            flat = view.permute(0, 2, 3, 1).reshape(len(x), -1).contiguous()
            total = total + torch.cat([self.model(flat[i : i + CPU_ROWS_PER_PASS]) for i in rows])
        return total.double() / len(views)


def main() -> None:
    model, config = model_and_config(__doc__.splitlines()[0])
    t0, scored = time.time(), {}
    fields = {k: getattr(model, k) for k in model.__dataclass_fields__}
    for name, offsets in SHIFTS.items():
        shifted = ShiftAveraged(**fields, offsets=tuple(offsets))
        scored[name] = faces(shifted, config)
        cells = []
        for ds, (p, y) in scored[name].items():
            right, base = p.argmax(1) == y, scored["none"][ds][0].argmax(1) == y
            diff = right.mean() - base.mean()
            cells.append(f"{ds} {right.mean():.3f} ({diff:+.3f}, p {mcnemar_p(base, right):.2g})")
        print(f"{name} ({time.time() - t0:.0f} s): " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
