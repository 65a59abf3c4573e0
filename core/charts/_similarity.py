"""Chart builders for the similarity pages."""

from __future__ import annotations

__all__: list[str] = []
