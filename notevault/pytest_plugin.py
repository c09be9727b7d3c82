"""pytest plugin placeholder: filled in by the CI issue."""
