"""Types of the compiled ``bastion.intel._batchscan`` (``_batchscan.c``; built by `make native`)."""

from typing import Any

def scan(
    observables: list[tuple[str, str]],
    words: Any,
    shift: int,
    levels: tuple[int, ...],
    domain_exact: bool,
    bucket_any: Any,
    bucket_shift: int,
    /,
) -> tuple[list[tuple[int, int, str]], list[int], list[int], list[int]]: ...
def key_hashes(keys: list[str], out: Any, /) -> None: ...
