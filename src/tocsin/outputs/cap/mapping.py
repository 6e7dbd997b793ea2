"""tocsin alerts to CAP: `alert_message`, its Ukrainian and English texts and grading table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

from shapely.geometry.base import BaseGeometry

from tocsin.model import ALERT_TYPES, SEVERITIES
from tocsin.outputs.cap.geometry import cap_polygons
from tocsin.outputs.cap.model import CapArea, CapInfo, CapMessage, cap_time

__all__ = ["PROFILE_CODE", "alert_message"]

_LANGUAGES: Final = ("uk-UA", "en-US")
# `<code>`: the profile these messages follow (profiles such as IPAWS' make one mandatory)
PROFILE_CODE: Final = "profile:tocsin:1.0"
_EVENT: Final[Mapping[str, tuple[str, str]]] = {
    "air_raid": ("Повітряна тривога", "Air raid alert"),
    "artillery_shelling": ("Загроза артобстрілу", "Artillery shelling threat"),
    "urban_fights": ("Загроза вуличних боїв", "Urban fights threat"),
    "chemical": ("Хімічна загроза", "Chemical threat"),
    "nuclear": ("Радіаційна загроза", "Nuclear threat"),
}
_CATEGORY: Final[Mapping[str, str]] = {
    "air_raid": "Safety",
    "artillery_shelling": "Safety",
    "urban_fights": "Security",
    "chemical": "CBRNE",
    "nuclear": "CBRNE",
}
_INSTRUCTION: Final[Mapping[str, tuple[str, str]]] = {
    "air_raid": (
        "Негайно пройдіть до найближчого укриття.",
        "Go to the nearest shelter immediately.",
    ),
    "artillery_shelling": (
        "Перейдіть до укриття, тримайтеся подалі від вікон.",
        "Take shelter away from windows.",
    ),
    "urban_fights": (
        "Залишайтеся в укритті, не виходьте на вулицю.",
        "Stay in shelter and do not go outside.",
    ),
    "chemical": (
        "Укрийтеся в приміщенні, зачиніть вікна й двері, захистіть органи дихання.",
        "Shelter indoors, close windows and doors, and protect your breathing.",
    ),
    "nuclear": (
        "Перейдіть до найглибшого укриття або в центр будівлі, зачиніть вікна й двері, "
        "чекайте офіційних вказівок.",
        "Go to the deepest shelter or the middle of a building, close windows and doors, "
        "and wait for official instructions.",
    ),
}
_ALL_CLEAR: Final = ("Відбій тривоги", "All clear")
_ALL_CLEAR_TEXT: Final = (
    "Загроза минула. Будьте уважні до нових сигналів.",
    "The threat has passed. Stay alert for further warnings.",
)
_SEVERITY_TEXT: Final[Mapping[str, tuple[str, str]]] = {
    "imminent": (
        "Безпосередня загроза: негайно прямуйте в укриття.",
        "Immediate threat: take shelter now.",
    ),
    "alert": ("Тривога: загроза для цього району.", "Alert: a threat to this area."),
    "pre_alert": (
        "Попередження: загроза може виникнути найближчим часом.",
        "Early warning: a threat may develop shortly.",
    ),
}
# (urgency, severity, certainty): the table in the `tocsin.outputs.cap` docstring.
_GRADE: Final[Mapping[str, tuple[str, str, str]]] = {
    "imminent": ("Immediate", "Extreme", "Observed"),
    "alert": ("Immediate", "Severe", "Likely"),
    "pre_alert": ("Expected", "Severe", "Possible"),
}
_CANCEL_GRADE: Final = ("Past", "Minor", "Observed")
_STATUSES: Final = ("Actual", "Exercise", "Test")
_MSG_TYPES: Final = ("Alert", "Update", "Cancel")


def _eta_text(eta_s: float, lang: int) -> str:
    # Whole minutes rounded down: telling people they have less time than they do is the safe error.
    minutes = int(eta_s // 60)
    if minutes < 1:
        texts = ("Орієнтовний час до загрози: менше хвилини.", "Time to threat: under a minute.")
    else:
        texts = (f"Орієнтовний час до загрози: {minutes} хв.", f"Time to threat: {minutes} min.")
    return texts[lang]


def alert_message(
    *,
    identifier: str,
    sender: str,
    sent: datetime,
    status: str,
    msg_type: str,
    alert_type: str,
    severity: str | None,
    region_id: str,
    region_names: Mapping[str, str],
    geometry: BaseGeometry | None = None,
    geocodes: Sequence[tuple[str, str]] = (),
    references: Sequence[tuple[str, str, str | datetime]] = (),
    causes: Sequence[str] = (),
    eta_s: float | None = None,
    log_index: int | None = None,
    expires: datetime | None = None,
    sender_name: str | None = None,
    web: str | None = None,
) -> CapMessage:
    """Map one tocsin alert of one region to a CAP message with `uk-UA` and `en-US` info blocks.

    `msg_type` Cancel is the all-clear (its `severity` is ignored); Update and Cancel need the
    `references` (sender, identifier, sent) of what they update. `eta_s` counts from `sent` and
    becomes `onset`; `log_index` goes into the parameter `tocsin:log_index` so a reader can find
    the decision in the public log. `geometry` is shapely lon/lat (see `cap_polygons`).
    """
    if status not in _STATUSES:
        raise ValueError(f"status must be one of {', '.join(_STATUSES)} (got {status!r})")
    if msg_type not in _MSG_TYPES:
        raise ValueError(f"msg_type must be one of {', '.join(_MSG_TYPES)} (got {msg_type!r})")
    if alert_type not in ALERT_TYPES:
        raise ValueError(f"alert_type must be one of {', '.join(ALERT_TYPES)} (got {alert_type!r})")
    cancel = msg_type == "Cancel"
    if not cancel and severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)} (got {severity!r})")
    if msg_type != "Alert" and not references:
        raise ValueError(f"a {msg_type} needs the references of the message it replaces")
    if eta_s is not None and not (math.isfinite(eta_s) and eta_s >= 0):
        raise ValueError(f"eta_s must be a finite number of seconds >= 0 (got {eta_s!r})")
    sent_text = cap_time(sent)
    expires_text = None if expires is None else cap_time(expires)
    if expires is not None and expires <= sent:
        raise ValueError("expires must be later than sent")
    refs = tuple((s, i, cap_time(t) if isinstance(t, datetime) else t) for s, i, t in references)
    grade = _CANCEL_GRADE if cancel else _GRADE[str(severity)]
    parameters: list[tuple[str, str]] = [("tocsin:region", region_id)]
    if not cancel:
        parameters.append(("tocsin:severity", str(severity)))
    if eta_s is not None and not cancel:
        parameters.append(("tocsin:eta_s", str(int(eta_s))))
    parameters.extend(("tocsin:cause", cause) for cause in causes)
    if log_index is not None:
        parameters.append(("tocsin:log_index", str(log_index)))
    polygons = cap_polygons(geometry) if geometry is not None else ()
    onset = None
    if eta_s is not None and not cancel:
        # Whole seconds rounded down: an onset announced early errs on the safe side.
        onset = cap_time(sent + timedelta(seconds=int(eta_s)))
    infos: list[CapInfo] = []
    for lang, language in enumerate(_LANGUAGES):
        name = region_names.get(language[:2]) or next(iter(region_names.values()), region_id)
        event = _EVENT[alert_type][lang]
        instruction: str | None = None
        if cancel:
            headline = f"{_ALL_CLEAR[lang]}: {name} ({event})"
            description = _ALL_CLEAR_TEXT[lang]
        else:
            headline = f"{event}: {name}"
            description = _SEVERITY_TEXT[str(severity)][lang]
            if eta_s is not None:
                description += " " + _eta_text(eta_s, lang)
            instruction = _INSTRUCTION[alert_type][lang]
        infos.append(
            CapInfo(
                language=language,
                categories=(_CATEGORY[alert_type],),
                event=event,
                response_types=("AllClear" if cancel else "Shelter",),
                urgency=grade[0],
                severity=grade[1],
                certainty=grade[2],
                event_codes=(("tocsin:alert_type", alert_type),),
                onset=onset,
                expires=expires_text,
                sender_name=sender_name,
                headline=headline,
                description=description,
                instruction=instruction,
                web=web,
                parameters=tuple(parameters),
                areas=(CapArea(name, polygons, (), tuple(geocodes)),),
            )
        )
    return CapMessage(
        identifier=identifier,
        sender=sender,
        sent=sent_text,
        status=status,
        msg_type=msg_type,
        scope="Public",
        code=(PROFILE_CODE,),
        references=refs,
        infos=tuple(infos),
    )
