"""Chart builders for the audit pages."""

from __future__ import annotations

__all__: list[str] = []
