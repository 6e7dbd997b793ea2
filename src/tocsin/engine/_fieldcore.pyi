from typing_extensions import Buffer

def redraw(
    eta: Buffer,
    t_s: Buffer,
    off: Buffer,
    min_a: Buffer,
    arg_a: Buffer,
    min_b: Buffer,
    arg_b: Buffer,
    order: Buffer,
    old: Buffer,
    new: Buffer,
    vals: Buffer,
    slot: int,
    used: int,
    t: float,
    off_val: float,
    /,
) -> bytearray: ...

def settle(
    eta: Buffer,
    t_us: Buffer,
    off: Buffer,
    min_a: Buffer,
    arg_a: Buffer,
    arg_b: Buffer,
    shelter: Buffer,
    op: Buffer,
    rank: Buffer,
    hold: Buffer,
    esc: Buffer,
    leaves: Buffer,
    now: int,
    margin: float,
    /,
) -> tuple[bytearray, int]: ...
