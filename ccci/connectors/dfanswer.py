"""``/system/df``'s answer decoded without its container list.

Before API 1.42 the engine answers every disk-usage call with everything it sized, and the
container list is most of it: two thirds of the answer's decoding (10 ms at 1,500
containers, in the run's critical path, right after the engine's slowest read). ccci reads
the build cache and the images' shared sizes, never the containers, so that part is left
undecoded when the answer is laid out as the engine writes it; any other answer is decoded
whole, as before.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Go writes a struct's fields in their order: LayersSize, Images, Containers, Volumes,
# BuildCache, BuilderSize, in compact JSON.
_HEAD = re.compile(r'\{"LayersSize":(-?\d+),"Images":')
_CONTAINERS = ',"Containers":'
_AFTER_CONTAINERS = '],"Volumes":'
_TAIL_KEYS = frozenset({"Volumes", "BuildCache", "BuilderSize"})
_DECODER = json.JSONDecoder()


def without_containers(text: str) -> dict[str, Any] | None:
    """The answer with every top-level key but ``Containers``, or None when it is not laid out
    as the engine writes it (then the caller decodes it whole).

    The images are decoded where they start. The container list ends at the last
    ``],"Volumes":``: no field of a container, a volume or a build cache record is an array
    followed by a key named ``Volumes``, and what follows it must decode as the rest of the
    top-level object (Volumes, BuildCache, BuilderSize), which no match nested deeper does.
    """
    head = _HEAD.match(text)
    if head is None:
        return None
    try:
        images, end = _DECODER.raw_decode(text, head.end())
        if not text.startswith(_CONTAINERS, end):
            return None
        cut = text.rfind(_AFTER_CONTAINERS)
        if cut < end + len(_CONTAINERS):
            return None
        rest = json.loads("{" + text[cut + 2 :])
    except ValueError:
        return None
    if not isinstance(rest, dict) or not set(rest) <= _TAIL_KEYS:
        return None
    return {"LayersSize": int(head.group(1)), "Images": images, **rest}
