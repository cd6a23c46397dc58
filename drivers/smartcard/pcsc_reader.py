"""The PC/SC smart card reader driver (pyscard's ``smartcard.scard`` layer over pcsc-lite's ``pcscd``).

Profile example::

    smartcard:
      driver: pcsc
      settings: {reader: "Virtual PCD 00 00", applications: [social_security, bank]}

``reader`` is the reader's PC/SC name, or the start of it ("ACS ACR39U" matches "ACS ACR39U ICC Reader 00 00");
without it the first reader pcscd lists is used.

Failure model (every call under the driver's lock, one card session at a time):

* pcscd not running / restarted → :class:`NoDevice`; the PC/SC context is established again by itself on the next
  call, so the driver recovers when the service is back. The reader not listed → :class:`NoDevice`.
* no card → :class:`NoCard`; another program holds the card exclusively → :class:`DeviceBusy`.
* the card leaves during a read (transmit reports the card removed, or a transmit fails and a reset finds no card)
  → :class:`CardRemoved` at once (no timeout to wait for). Nothing of a half-read card is returned.
* the card answers an error status → the typed error of :func:`drivers.smartcard.apdu.error_for_sw`; card data that
  does not parse → :class:`InvalidCardData` / :class:`~drivers.smartcard.errors.TlvError`.

T=0 cards: 61xx is followed by GET RESPONSE and 6Cxx by the same command with Le = xx (ISO/IEC 7816-4 §5.1.3), so
the driver works with T=0 and T=1 readers alike. APDUs, PINs and card data are never logged.
"""
from __future__ import annotations

import logging
from datetime import date
from typing import Any, Callable

from smartcard import scard as sc

from drivers.base import DeviceState, DeviceStatus, MediaState, device_call
from drivers.errors import (
    CardReadFailed, CardRemoved, DeviceBusy, DeviceError, NoCard, NoDevice, ProtocolError,
)
from drivers.idcard.identity import IdentityDocument
from drivers.smartcard import apdu as a
from drivers.smartcard import bankcard as bc
from drivers.smartcard import sscard as ss
from drivers.smartcard.base import APPLICATIONS, SmartCardData, SmartCardReader
from drivers.smartcard.errors import PinRequired, UnsupportedCard

log = logging.getLogger(__name__)

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "PC/SC smart card reader (social-security and bank cards)",
    "type": "object",
    "properties": {
        "reader": {
            "type": "string", "minLength": 1,
            "description": "PC/SC reader name or its beginning (default: the first reader pcscd lists)",
        },
        "applications": {
            "type": "array", "items": {"type": "string", "enum": list(APPLICATIONS)}, "minItems": 1,
            "uniqueItems": True, "default": list(APPLICATIONS),
            "description": "which card applications to look for, in this order",
        },
        "protocol": {"type": "string", "enum": ["any", "T0", "T1"], "default": "any"},
    },
    "additionalProperties": False,
}

_U32 = 0xFFFFFFFF


def _hr(value: int) -> int:
    return value & _U32


S_SUCCESS = _hr(sc.SCARD_S_SUCCESS)
E_NO_SERVICE = _hr(sc.SCARD_E_NO_SERVICE)
E_SERVICE_STOPPED = _hr(sc.SCARD_E_SERVICE_STOPPED)
E_INVALID_HANDLE = _hr(sc.SCARD_E_INVALID_HANDLE)
E_NO_READERS = _hr(sc.SCARD_E_NO_READERS_AVAILABLE)
E_UNKNOWN_READER = _hr(sc.SCARD_E_UNKNOWN_READER)
E_READER_UNAVAILABLE = _hr(sc.SCARD_E_READER_UNAVAILABLE)
E_NO_SMARTCARD = _hr(sc.SCARD_E_NO_SMARTCARD)
W_REMOVED_CARD = _hr(sc.SCARD_W_REMOVED_CARD)
W_RESET_CARD = _hr(sc.SCARD_W_RESET_CARD)
W_UNRESPONSIVE = _hr(sc.SCARD_W_UNRESPONSIVE_CARD)
W_UNPOWERED = _hr(sc.SCARD_W_UNPOWERED_CARD)
E_SHARING_VIOLATION = _hr(sc.SCARD_E_SHARING_VIOLATION)
E_TIMEOUT = _hr(sc.SCARD_E_TIMEOUT)

_SERVICE_GONE = {E_NO_SERVICE, E_SERVICE_STOPPED, E_INVALID_HANDLE}
_READER_GONE = {E_UNKNOWN_READER, E_READER_UNAVAILABLE, E_NO_READERS}
_CARD_GONE = {E_NO_SMARTCARD, W_REMOVED_CARD}

_PROTOCOLS = {"any": sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1, "T0": sc.SCARD_PROTOCOL_T0,
              "T1": sc.SCARD_PROTOCOL_T1}

#: GET RESPONSE / repeat-with-Le rounds allowed for one command (a card that keeps saying 61xx is broken)
_MAX_CHAINED = 16



def _message(hr: int) -> str:
    try:
        return sc.SCardGetErrorMessage(hr)
    except Exception:  # pyscard may not know the code
        return f"0x{_hr(hr):08X}"


class _ServiceGone(Exception):
    """Internal: the PC/SC context is no longer valid (pcscd stopped or restarted)."""




class _CardSession:
    """One connection to the card: transmit with T=0 chaining, typed errors."""

    def __init__(self, reader: "PcscSmartCardReader", handle: int, protocol: int) -> None:
        self.reader = reader
        self.handle = handle
        self.protocol = protocol
        self.apdus = 0

    def _raw(self, apdu: bytes) -> a.ResponseApdu:
        self.apdus += 1
        hr, response = sc.SCardTransmit(self.handle, self.protocol, list(apdu))
        hr = _hr(hr)
        if hr == S_SUCCESS and len(response) >= 2:
            return a.ResponseApdu.parse(bytes(response))
        if hr in _CARD_GONE:
            raise CardRemoved(f"the card left the reader during the read ({a.describe(apdu)})")
        if hr in _SERVICE_GONE:
            raise NoDevice(f"PC/SC service failed during the read: {_message(hr)}")
        if hr in _READER_GONE:
            raise NoDevice(f"the card reader went away during the read: {_message(hr)}")
        # a transmit that failed or came back empty: is the card still there? (a reset answers at once)
        what = "an empty answer" if hr == S_SUCCESS else _message(hr)
        raise self._after_failure(CardReadFailed(f"communication with the card failed ({what})"))

    def _after_failure(self, error: DeviceError) -> DeviceError:
        hr, _ = sc.SCardReconnect(self.handle, sc.SCARD_SHARE_SHARED, self.reader._protocols, sc.SCARD_RESET_CARD)
        if _hr(hr) in _CARD_GONE:
            return CardRemoved("the card left the reader during the read")
        return error

    def transmit(self, apdu: bytes) -> a.ResponseApdu:
        """Send ``apdu``; follow 61xx with GET RESPONSE and 6Cxx with the same command at Le = xx."""
        response = self._raw(apdu)
        data = b""
        for _ in range(_MAX_CHAINED):
            if response.sw1 == 0x61:
                data += response.data
                response = self._raw(a.get_response(response.sw2 or 256))
            elif response.sw1 == 0x6C and len(apdu) >= 4:
                body = apdu[4:]
                if len(body) > 1 and len(body) == 1 + body[0]:   # case 3: append Le
                    apdu = apdu + bytes([response.sw2])
                elif body:                                         # case 2 or 4: replace Le
                    apdu = apdu[:-1] + bytes([response.sw2])
                else:                                              # case 1: add Le
                    apdu = apdu + bytes([response.sw2])
                response = self._raw(apdu)
            else:
                return a.ResponseApdu(data + response.data, response.sw1, response.sw2)
        raise ProtocolError("the card keeps asking for more exchanges", reason="chaining_loop")

    def expect_ok(self, apdu: bytes, context: str) -> bytes:
        response = self.transmit(apdu)
        if not response.ok:
            raise a.error_for_sw(response.sw, context)
        return response.data


class PcscSmartCardReader(SmartCardReader):
    SETTINGS_SCHEMA = SETTINGS_SCHEMA

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.configured_reader: str | None = settings.get("reader")
        self.applications: list[str] = list(settings.get("applications", APPLICATIONS))
        self._protocols: int = _PROTOCOLS[settings.get("protocol", "any")]
        self.counters: dict[str, int] = {"cards_read": 0, "errors": 0, "reconnects": 0, "apdus": 0}
        self._context: int | None = None
        self._resolved: str | None = None

    # context and reader ---------------------------------------------------------------------------------------------
    def _open(self) -> None:
        self._establish()

    def _close(self) -> None:
        self._release()

    def _establish(self) -> int:
        hr, context = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
        if _hr(hr) != S_SUCCESS:
            raise NoDevice(f"PC/SC service not available: {_message(hr)}")
        self._context = context
        return context

    def _release(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            try:
                sc.SCardReleaseContext(context)
            except Exception:  # the service may be gone already
                pass

    def _ctx(self) -> int:
        if self._context is not None:
            return self._context
        if not self._opened:
            raise NoDevice("smart card reader driver is not open")
        context = self._establish()
        self.counters["reconnects"] += 1
        log.info("PC/SC context established again")
        return context

    def _with_context(self, op: Callable[[int], Any]) -> Any:
        """Run ``op(context)``; when the service was restarted, establish a new context and run it once more."""
        try:
            return op(self._ctx())
        except _ServiceGone:
            self._release()
            try:
                return op(self._ctx())
            except _ServiceGone:
                self._release()
                raise NoDevice("PC/SC service not available") from None

    def _list_readers(self, context: int) -> list[str]:
        hr, readers = sc.SCardListReaders(context, [])
        hr = _hr(hr)
        if hr in _SERVICE_GONE:
            raise _ServiceGone()
        if hr == E_NO_READERS:
            return []
        if hr != S_SUCCESS:
            raise NoDevice(f"PC/SC cannot list readers: {_message(hr)}")
        return list(readers)

    def _resolve(self, context: int) -> str:
        readers = self._list_readers(context)
        wanted = self.configured_reader
        if wanted is None:
            if not readers:
                raise NoDevice("no smart card reader connected")
            name = readers[0]
        elif wanted in readers:
            name = wanted
        else:
            matches = [r for r in readers if r.startswith(wanted)]
            if not matches:
                raise NoDevice(f"smart card reader {wanted!r} not connected", reader=wanted)
            name = matches[0]
        self._resolved = name
        return name

    def matches(self, reader_name: str) -> bool:
        """Whether ``reader_name`` (as PC/SC reports it) is this driver's reader."""
        if self._resolved is not None:
            return reader_name == self._resolved
        if self.configured_reader is None:
            return True
        return reader_name == self.configured_reader or reader_name.startswith(self.configured_reader)

    @property
    def reader_name(self) -> str:
        return self._resolved or self.configured_reader or ""

    def _reader_state(self, context: int) -> tuple[str, int]:
        name = self._resolve(context)
        hr, states = sc.SCardGetStatusChange(context, 0, [(name, sc.SCARD_STATE_UNAWARE)])
        hr = _hr(hr)
        if hr in _SERVICE_GONE:
            raise _ServiceGone()
        if hr in _READER_GONE:
            raise NoDevice(f"smart card reader {name!r} went away")
        if hr not in (S_SUCCESS, E_TIMEOUT):
            raise NoDevice(f"PC/SC reader state unavailable: {_message(hr)}")
        return name, states[0][1] if states else 0

    # SmartCardReader ------------------------------------------------------------------------------------------------
    @device_call
    def card_present(self) -> bool:
        _, state = self._with_context(self._reader_state)
        return bool(state & sc.SCARD_STATE_PRESENT) and not state & sc.SCARD_STATE_MUTE

    def _connect(self, context: int) -> _CardSession:
        name = self._resolve(context)
        hr, handle, protocol = sc.SCardConnect(context, name, sc.SCARD_SHARE_SHARED, self._protocols)
        hr = _hr(hr)
        if hr == S_SUCCESS:
            return _CardSession(self, handle, protocol)
        if hr in _SERVICE_GONE:
            raise _ServiceGone()
        if hr in _READER_GONE:
            raise NoDevice(f"smart card reader {name!r} went away")
        if hr in _CARD_GONE:
            raise NoCard("no card in the smart card reader")
        if hr == E_SHARING_VIOLATION:
            raise DeviceBusy("another program holds the card")
        if hr in (W_UNRESPONSIVE, W_UNPOWERED):
            raise CardReadFailed(f"the card does not answer: {_message(hr)}")
        raise CardReadFailed(f"cannot connect to the card: {_message(hr)}")

    def _session(self, work: Callable[[_CardSession], Any]) -> Any:
        session = self._with_context(self._connect)
        began = _hr(sc.SCardBeginTransaction(session.handle)) == S_SUCCESS
        try:
            return work(session)
        finally:
            self.counters["apdus"] += session.apdus
            if began:
                sc.SCardEndTransaction(session.handle, sc.SCARD_LEAVE_CARD)
            sc.SCardDisconnect(session.handle, sc.SCARD_LEAVE_CARD)

    @device_call
    def read_card(self, pin: str | None = None) -> SmartCardData:
        if pin is not None:
            a.pin_to_bcd(pin)   # ValueError for a malformed PIN, before touching the card
        result = self._session(lambda s: self._read_any(s, pin))
        self.counters["cards_read"] += 1
        return result

    @device_call
    def read_social_security(self, pin: str | None = None) -> IdentityDocument:
        if pin is not None:
            a.pin_to_bcd(pin)
        result = self._session(lambda s: self._read_ss(s, pin))
        self.counters["cards_read"] += 1
        return result

    @device_call
    def read_bank_card(self) -> bc.BankCard:
        result = self._session(self._read_bank)
        self.counters["cards_read"] += 1
        return result

    def _read_any(self, session: _CardSession, pin: str | None) -> SmartCardData:
        for app in self.applications:
            try:
                if app == "social_security":
                    return self._read_ss(session, pin)
                return self._read_bank(session)
            except UnsupportedCard:
                continue
        raise UnsupportedCard("the card is neither a social-security card nor a bank card")

    # social-security card -------------------------------------------------------------------------------------------
    def _read_ss(self, session: _CardSession, pin: str | None) -> IdentityDocument:
        response = session.transmit(a.select_by_name_no_le(ss.SSSE_AID))
        if response.sw in (a.SW_FILE_NOT_FOUND, a.SW_FUNCTION_NOT_SUPPORTED, a.SW_INS_NOT_SUPPORTED,
                           a.SW_CLA_NOT_SUPPORTED):
            raise UnsupportedCard("no social-security application on the card")
        if not response.ok:
            raise a.error_for_sw(response.sw, "select social-security application")

        def read(sfi: int, record: int) -> bytes:
            raw = session.expect_ok(a.read_record(record, sfi), f"read EF{sfi:02X} record {record}")
            return ss.record_value(raw, record)

        ef05 = {rec: read(ss.EF05_SFI, rec) for rec in ss.EF05_RECORDS}
        first = session.transmit(a.read_record(ss.EF06_RECORDS[0], ss.EF06_SFI))
        if first.sw == a.SW_SECURITY_NOT_SATISFIED:
            if pin is None:
                raise PinRequired("the card wants its PIN before the cardholder records")
            session.expect_ok(a.verify_pin(pin), "verify PIN")
            first = session.transmit(a.read_record(ss.EF06_RECORDS[0], ss.EF06_SFI))
        if not first.ok:
            raise a.error_for_sw(first.sw, "read EF06 record 1")
        ef06 = {ss.EF06_RECORDS[0]: ss.record_value(first.data, ss.EF06_RECORDS[0])}
        ef06.update({rec: read(ss.EF06_SFI, rec) for rec in ss.EF06_RECORDS[1:]})
        return ss.decode_identity(ef05, ef06)

    # bank card --------------------------------------------------------------------------------------------------------
    def _read_bank(self, session: _CardSession) -> bc.BankCard:
        candidates: list[bc.Application] = []
        ppse = session.transmit(a.select_by_name(bc.PPSE))
        if ppse.ok:
            candidates = [app for app in bc.parse_directory(ppse.data)]
        if not candidates:
            candidates = [bc.Application(aid) for aid in bc.FALLBACK_AIDS]
        for app in candidates:
            response = session.transmit(a.select_by_name(app.aid))
            if response.sw in (a.SW_FILE_NOT_FOUND, a.SW_FUNCTION_NOT_SUPPORTED):
                continue
            if response.sw in (a.SW_INS_NOT_SUPPORTED, a.SW_CLA_NOT_SUPPORTED):
                break
            if not response.ok:
                raise a.error_for_sw(response.sw, "select payment application")
            selected = bc.parse_application_fci(response.data)
            gpo = session.expect_ok(bc.gpo_command(bc.pdol_data(selected.pdol, date.today())),
                                    "get processing options")
            _, afl = bc.parse_gpo(gpo)

            def records() -> Any:
                for sfi, record in bc.parse_afl(afl):
                    yield session.expect_ok(a.read_record(record, sfi), f"read SFI {sfi} record {record}")

            aid = selected.df_name or app.aid
            return bc.BankCard(masked_pan=bc.masked_pan_from_records(records()), aid=aid.hex().upper(),
                               label=selected.label or app.label, scheme=bc.scheme_of(aid))
        raise UnsupportedCard("no bank application on the card")

    # health ---------------------------------------------------------------------------------------------------------
    def status(self) -> DeviceStatus:
        with self._lock:
            def snapshot(device: DeviceState, media: MediaState = MediaState.UNKNOWN,
                         error: DeviceError | None = None, detail: str = "") -> DeviceStatus:
                return DeviceStatus(kind=self.KIND, device=device, media=media,
                                    error_code=error.code if error else None,
                                    detail=detail or (str(error) if error else ""),
                                    counters=dict(self.counters), extra={"reader": self.reader_name})

            if not self._opened:
                return snapshot(DeviceState.NO_DEVICE, detail="driver not open")
            try:
                _, state = self._with_context(self._reader_state)
            except NoDevice as exc:
                return snapshot(DeviceState.NO_DEVICE, error=exc)
            except DeviceError as exc:
                return snapshot(DeviceState.HARDWARE_ERROR, error=exc)
            if state & sc.SCARD_STATE_MUTE:
                return snapshot(DeviceState.ONLINE, MediaState.UNKNOWN,
                                error=CardReadFailed("the card in the reader does not answer"))
            if state & sc.SCARD_STATE_PRESENT:
                return snapshot(DeviceState.ONLINE, MediaState.PRESENT)
            return snapshot(DeviceState.ONLINE, MediaState.NOT_PRESENT)


__all__ = ["PcscSmartCardReader", "SETTINGS_SCHEMA"]
