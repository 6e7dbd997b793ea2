from typing_extensions import Buffer

class LeafTable:
    def __init__(
        self,
        box: Buffer,
        extent: Buffer,
        directions: Buffer,
        rx: Buffer,
        ry: Buffer,
        ax: Buffer,
        ay: Buffer,
        bx: Buffer,
        by: Buffer,
        start: Buffer,
        slack: float,
        scale: tuple[float, float, Buffer, Buffer, Buffer, Buffer, Buffer] | None = None,
    ) -> None: ...
    def cover(self, x: Buffer, y: Buffer) -> tuple[bytearray, bytearray]: ...
    def distances(self, x: float, y: float, leaves: Buffer) -> tuple[bytearray, int]: ...
    def measure(self, x: float, y: float, leaves: Buffer) -> tuple[bytearray, int, float]: ...
