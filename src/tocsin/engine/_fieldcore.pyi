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
