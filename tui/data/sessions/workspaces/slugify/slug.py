"""URL slugs from titles."""

import re


def slugify(title: str) -> str:
    """Lower-case words joined by hyphens: "Hello, World!" -> "hello-world"."""
    text = title.lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[\s_-]+", "-", text).strip("-")
