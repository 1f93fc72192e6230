"""The DP-SGD generators' view of a table: one one-hot block per column.

Every column is encoded by :class:`privsynth.encoding.Encoder` from the schema alone (public or
DP-learned domains): a category becomes its index, a number the index of its public bin. The
network sees one one-hot block per column; no min/max, category list or mixture model is ever
fitted on the private rows. Sampling draws a code per block from the network's softmax and
decodes it with the encoder (a number is drawn uniformly inside its bin). Post-processing only:
nothing here spends privacy.
"""

from __future__ import annotations

import numpy as np
import torch


class OneHotBlocks:
    """Encoded rows (integer codes, one column per schema column) <-> one-hot blocks.

    Built from the encoder's public domain sizes only. Per-block softmaxes are computed for
    all blocks at once, with sums over blocks as a product with the ``(width, columns)``
    block-membership matrix: slicing block by block cost DPCTGAN more time than its
    networks (each slice's gradient is a zero-filled full-width tensor).
    """

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = list(sizes)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        #: Each one-hot cell's column (block) index.
        self.block_of = torch.from_numpy(np.repeat(np.arange(len(self.sizes)), self.sizes))
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def width(self) -> int:
        return int(self.offsets[-1])

    def _index(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Each cell's block and the membership matrix, on ``device`` (kept per device)."""
        if device not in self._on:
            block_of = self.block_of.to(device)
            member = torch.zeros(self.width, len(self.sizes), device=device)
            member[torch.arange(self.width, device=device), block_of] = 1.0
            self._on[device] = (block_of, member)
        return self._on[device]

    def _slices(self) -> list[slice]:
        return [slice(a, b) for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]

    @torch.no_grad()
    def argmax(self, x: torch.Tensor) -> torch.Tensor:
        """Each block's index of its largest entry: ``(rows, columns)`` codes."""
        return torch.stack([x[:, s].argmax(dim=1) for s in self._slices()], dim=1)

    def log_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Each block's log-softmax, side by side like ``logits``."""
        block_of, member = self._index(logits.device)
        with torch.no_grad():  # a per-block shift, for stability only: it cancels out
            top = torch.stack([logits[:, s].amax(dim=1) for s in self._slices()], dim=1)
        shifted = logits - top.index_select(1, block_of)
        log_sums = torch.log(torch.exp(shifted) @ member)
        return shifted - log_sums.index_select(1, block_of)

    def one_hot(self, codes: torch.Tensor) -> torch.Tensor:
        """``(rows, columns)`` integer codes -> ``(rows, width)`` one-hot rows."""
        offsets = torch.from_numpy(self.offsets[:-1]).to(codes.device)
        out = torch.zeros(len(codes), self.width, device=codes.device)
        return out.scatter_(1, codes + offsets, 1.0)

    def transform(self, codes: np.ndarray) -> torch.Tensor:
        return self.one_hot(torch.from_numpy(np.asarray(codes, dtype=np.int64)))

    def block_cross_entropy(self, logits: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Per-row sum over columns of the cross-entropy of each block's softmax."""
        return -(self.log_softmax(logits) * onehot).sum(1)

    def sample_codes(self, logits: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
        """One code per block drawn from its softmax, by inverse CDF with ``rng``."""
        out = np.empty((len(logits), len(self.sizes)), dtype=np.int64)
        for j, (a, b) in enumerate(zip(self.offsets[:-1], self.offsets[1:], strict=True)):
            p = torch.softmax(logits[:, a:b].double(), dim=1).cpu().numpy()
            cdf = np.cumsum(p, axis=1)
            u = rng.random((len(p), 1)) * cdf[:, -1:]
            out[:, j] = np.minimum((cdf < u).sum(axis=1), b - a - 1)
        return out
