"""Chart builders for the projection pages."""

from __future__ import annotations

__all__: list[str] = []
