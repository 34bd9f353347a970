"""Pure types shared by every layer: resource levels, public IDs, changes, errors."""
