"""The catalogue of send results: one stable code per reason a message does not leave.

Every refused or failed message is recorded with one of these codes, shown to API
callers, in the SMS log and in failure analysis. `retryable` says whether sending
the same request later can succeed without anyone changing anything.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SendError:
    code: str
    reason: str
    retryable: bool


OK = "Ok"

CATALOGUE: dict[str, SendError] = {
    e.code: e
    for e in (
        SendError("FailedOperation.AppDisabled",
                  "The application is disabled; it sends nothing.", False),
        SendError("FailedOperation.SignatureNotEffective",
                  "The signature is not effective, or not usable for this region.", False),
        SendError("FailedOperation.TemplateNotEffective",
                  "The template is not effective, or belongs to the other region.", False),
        SendError("InvalidParameterValue.TemplateParameterCountMismatch",
                  "The number of template parameters does not match the template's "
                  "variables.", False),
        SendError("InvalidParameterValue.TemplateParameterFormatError",
                  "A template parameter breaks the parameter rules: a verification code is "
                  "4 to 8 letters or digits; other parameters have no line breaks or control "
                  "characters, and no URLs unless the template allows them.", False),
        SendError("InvalidParameterValue.TemplateParameterLengthLimit",
                  "A template parameter is longer than parameters may be (35 characters "
                  "unless the installation sets another limit).", False),
        SendError("InvalidParameterValue.IncorrectPhoneNumber",
                  "The phone number is not valid for this region, or it appears earlier "
                  "in the same request.", False),
        SendError("FailedOperation.CountryNotAllowed",
                  "The application does not allow sending to this country/region.", False),
        SendError("FailedOperation.PhoneNumberInMuteList",
                  "The number is on the mute list for this signature and SMS type.", False),
        SendError("FailedOperation.PhoneNumberUnsubscribed",
                  "The number unsubscribed from this signature and SMS type.", False),
        SendError("LimitExceeded.PhoneNumberThirtySecondLimit",
                  "The same content went to this number less than 30 seconds ago.", True),
        SendError("LimitExceeded.PhoneNumberOneHourLimit",
                  "This number reached its hourly frequency limit.", True),
        SendError("LimitExceeded.PhoneNumberDailyLimit",
                  "This number reached its daily frequency limit.", True),
        SendError("FailedOperation.MarketingQuietHours",
                  "Marketing messages are not sent between 21:00 and 08:00 local time.", True),
        SendError("LimitExceeded.AppDailyLimit",
                  "The application reached its daily limit for this region.", True),
        SendError("LimitExceeded.AppCountryOrRegionDailyLimit",
                  "The application reached its daily limit for this country/region.", True),
        SendError("LimitExceeded.AccountInternationalDailyQuota",
                  "The account reached its international daily quota.", True),
        SendError("FailedOperation.InsufficientBalanceInSmsPackage",
                  "No credit package has enough balance left.", False),
        SendError("FailedOperation.GatewayRejected",
                  "The carrier refused the message.", False),
        SendError("FailedOperation.GatewayUnavailable",
                  "The carrier could not be reached; the message was not sent.", True),
        SendError("FailedOperation.Undelivered",
                  "The carrier could not deliver the message to the phone.", False),
        SendError("FailedOperation.OutcomeUnknown",
                  "The link to the carrier failed while this message was being handed "
                  "over; it may or may not have been sent, so it is not sent again.", False),
        SendError("FailedOperation.NoReceipt",
                  "The carrier took the message but sent no delivery receipt within the "
                  "validity period.", False),
    )
}


def describe(code: str) -> SendError:
    """The catalogue entry; unknown carrier codes still get a plain reason."""
    return CATALOGUE.get(code) or SendError(code, f"The carrier reported {code}.", False)
