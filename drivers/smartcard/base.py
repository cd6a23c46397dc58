"""The smart card reader interface (device kind ``smartcard``): social-security and bank cards in a contact reader.

A read gives either an :class:`~drivers.idcard.identity.IdentityDocument` (social-security card: the same class the
ID card reader produces, kind ``resident_id``, ``extra`` with ``card_number``/``issuer``/``region``) or a
:class:`~drivers.smartcard.bankcard.BankCard` (masked PAN only). Card events reach the kiosk as the ID reader's
:class:`~drivers.idcard.base.CardEvent` (see ``watcher.py``).
"""
from __future__ import annotations

import abc
from typing import Union

from drivers.base import Device, DeviceStatus
from drivers.idcard.identity import IdentityDocument
from drivers.smartcard.bankcard import BankCard

SmartCardData = Union[IdentityDocument, BankCard]

#: the applications a reader may look for, in the order they are tried
APPLICATIONS = ("social_security", "bank")


class SmartCardReader(Device):
    """A PC/SC-style contact card reader.

    ``status()`` reports ``device`` (online · no_device · hardware_error) and ``media`` (present · not_present ·
    unknown). Every method may raise :class:`drivers.errors.DeviceError` subclasses; none returns partial data:

    NoDevice (service or reader gone) · NoCard · CardRemoved (the card left during the read) · UnsupportedCard
    (neither application on the card) · PinRequired / PinIncorrect / PinBlocked · InvalidCardData / ProtocolError
    (card data not valid) · CardReadFailed (the card answered an error status).
    """

    KIND = "smartcard"

    @property
    @abc.abstractmethod
    def reader_name(self) -> str:
        """The name of the reader this driver uses (as the platform's card service lists it)."""

    @abc.abstractmethod
    def card_present(self) -> bool:
        """Whether a card is in the reader now."""

    @abc.abstractmethod
    def read_card(self, pin: str | None = None) -> SmartCardData:
        """Read the card in the reader: the social-security application first, then the bank application (as the
        ``applications`` setting orders them). ``pin`` is verified before the cardholder records when given."""

    @abc.abstractmethod
    def read_social_security(self, pin: str | None = None) -> IdentityDocument:
        """Read a social-security card; UnsupportedCard when the card has no such application."""

    @abc.abstractmethod
    def read_bank_card(self) -> BankCard:
        """Identify a bank card (masked PAN); UnsupportedCard when the card has no bank application."""

    @abc.abstractmethod
    def status(self) -> DeviceStatus: ...


__all__ = ["SmartCardReader", "SmartCardData", "APPLICATIONS"]
