"""Chart builders for the finetune pages."""

from __future__ import annotations

__all__: list[str] = []
