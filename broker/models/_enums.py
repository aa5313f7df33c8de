"""Enumerations of the Avro contract. Each has UNKNOWN first: the symbol an older reader
sees in place of one added later (the Avro enum `default`), never sent on purpose."""

from enum import StrEnum

__all__ = [
    "AppealInstance",
    "AppealOutcome",
    "AttachmentLocation",
    "AuditAction",
    "AuditOutcome",
    "CaseOutcome",
    "CheckResult",
    "DecisionOutcome",
    "DocumentHolder",
    "DocumentKind",
    "EscalationOutcome",
    "EscalationReason",
    "FacilityKind",
    "Gender",
    "IdentityCheckKind",
    "IdentityStatus",
    "Kem",
    "KeyAlgorithm",
    "KeyStatus",
    "KeyWrapMode",
    "PartyRole",
    "PlanStepStatus",
    "ProcedureKind",
    "PublicOrderKind",
    "ReceiptOutcome",
    "ReceiptReason",
    "ReturnKind",
    "ReturnOutcome",
    "RevocationReason",
    "Scenario",
    "ScenarioAnswer",
    "ShelterKind",
    "SignatureScheme",
]


class AttachmentLocation(StrEnum):
    """Where a recipient finds an attachment's chunks (docs/ENVELOPE.md §11.6)."""

    UNKNOWN = "UNKNOWN"
    RECIPIENT_TOPIC = "RECIPIENT_TOPIC"


class PartyRole(StrEnum):
    """Role of a party in the LVV network."""

    UNKNOWN = "UNKNOWN"
    MUNICIPALITY = "MUNICIPALITY"
    NGO = "NGO"
    IND = "IND"
    DTV = "DTV"
    AVIM = "AVIM"
    COA = "COA"
    ESCALATION = "ESCALATION"


class Scenario(StrEnum):
    """Durable-solution guidance scenario of the agreement."""

    UNKNOWN = "UNKNOWN"
    RETURN = "RETURN"
    ONWARD_MIGRATION = "ONWARD_MIGRATION"
    LEGALISATION = "LEGALISATION"


class IdentityStatus(StrEnum):
    """How firmly the person's identity and nationality are established."""

    UNKNOWN = "UNKNOWN"
    ESTABLISHED = "ESTABLISHED"
    PLAUSIBLE = "PLAUSIBLE"
    UNDER_INVESTIGATION = "UNDER_INVESTIGATION"
    NOT_ESTABLISHED = "NOT_ESTABLISHED"


class Gender(StrEnum):
    """Gender as recorded in the source registration (BRP/BVV)."""

    UNKNOWN = "UNKNOWN"
    FEMALE = "FEMALE"
    MALE = "MALE"
    OTHER = "OTHER"


class DocumentKind(StrEnum):
    """Kind of document."""

    UNKNOWN = "UNKNOWN"
    PASSPORT = "PASSPORT"
    NATIONAL_ID_CARD = "NATIONAL_ID_CARD"
    BIRTH_CERTIFICATE = "BIRTH_CERTIFICATE"
    LAISSEZ_PASSER = "LAISSEZ_PASSER"
    RESIDENCE_DOCUMENT = "RESIDENCE_DOCUMENT"
    DRIVING_LICENCE = "DRIVING_LICENCE"
    OTHER = "OTHER"


class DocumentHolder(StrEnum):
    """Who holds the original document now."""

    UNKNOWN = "UNKNOWN"
    PERSON = "PERSON"
    IND = "IND"
    DTV = "DTV"
    AVIM = "AVIM"
    EMBASSY = "EMBASSY"
    LOST = "LOST"


class PublicOrderKind(StrEnum):
    """Kind of contra-indication."""

    UNKNOWN = "UNKNOWN"
    CRIMINAL_CONVICTION = "CRIMINAL_CONVICTION"
    PENDING_PROSECUTION = "PENDING_PROSECUTION"
    ENTRY_BAN = "ENTRY_BAN"
    DECLARED_UNDESIRABLE = "DECLARED_UNDESIRABLE"
    NATIONAL_SECURITY = "NATIONAL_SECURITY"
    VIOLENT_INCIDENT = "VIOLENT_INCIDENT"
    OTHER = "OTHER"


class PlanStepStatus(StrEnum):
    """Progress of a plan step."""

    UNKNOWN = "UNKNOWN"
    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    CANCELLED = "CANCELLED"


class ShelterKind(StrEnum):
    """Form of shelter offered."""

    UNKNOWN = "UNKNOWN"
    NIGHT_ONLY = "NIGHT_ONLY"
    DAY_AND_NIGHT = "DAY_AND_NIGHT"
    GUIDANCE_ONLY = "GUIDANCE_ONLY"


class ProcedureKind(StrEnum):
    """Kind of procedure."""

    UNKNOWN = "UNKNOWN"
    ASYLUM_FIRST = "ASYLUM_FIRST"
    ASYLUM_SUBSEQUENT = "ASYLUM_SUBSEQUENT"
    REGULAR_RESIDENCE = "REGULAR_RESIDENCE"
    MEDICAL_POSTPONEMENT = "MEDICAL_POSTPONEMENT"
    NO_FAULT_PERMIT = "NO_FAULT_PERMIT"
    FAMILY_REUNIFICATION = "FAMILY_REUNIFICATION"
    STATELESSNESS = "STATELESSNESS"
    OTHER = "OTHER"


class DecisionOutcome(StrEnum):
    """Outcome of a decision."""

    UNKNOWN = "UNKNOWN"
    GRANTED = "GRANTED"
    REJECTED = "REJECTED"
    REJECTED_MANIFESTLY_UNFOUNDED = "REJECTED_MANIFESTLY_UNFOUNDED"
    NOT_CONSIDERED = "NOT_CONSIDERED"
    WITHDRAWN = "WITHDRAWN"
    PENDING = "PENDING"


class AppealInstance(StrEnum):
    """Where the appeal was heard."""

    UNKNOWN = "UNKNOWN"
    DISTRICT_COURT = "DISTRICT_COURT"
    COUNCIL_OF_STATE = "COUNCIL_OF_STATE"
    EUROPEAN_COURT = "EUROPEAN_COURT"


class AppealOutcome(StrEnum):
    """Outcome of an appeal."""

    UNKNOWN = "UNKNOWN"
    PENDING = "PENDING"
    UPHELD = "UPHELD"
    DISMISSED = "DISMISSED"
    WITHDRAWN = "WITHDRAWN"
    INADMISSIBLE = "INADMISSIBLE"


class ReturnKind(StrEnum):
    """Kind of departure."""

    UNKNOWN = "UNKNOWN"
    INDEPENDENT = "INDEPENDENT"
    ASSISTED = "ASSISTED"
    SUPERVISED = "SUPERVISED"
    DUBLIN_TRANSFER = "DUBLIN_TRANSFER"


class ReturnOutcome(StrEnum):
    """What became of the attempt."""

    UNKNOWN = "UNKNOWN"
    DEPARTED = "DEPARTED"
    RETURNED_TO_NL = "RETURNED_TO_NL"
    CANCELLED = "CANCELLED"
    NO_TRAVEL_DOCUMENT = "NO_TRAVEL_DOCUMENT"
    REFUSED_BY_DESTINATION = "REFUSED_BY_DESTINATION"
    ABSCONDED = "ABSCONDED"


class ScenarioAnswer(StrEnum):
    """The person's answer."""

    UNKNOWN = "UNKNOWN"
    PARTICIPATES = "PARTICIPATES"
    DECLINES = "DECLINES"
    UNDECIDED = "UNDECIDED"


class EscalationReason(StrEnum):
    """Why local decision-making is stuck."""

    UNKNOWN = "UNKNOWN"
    NO_AGREEMENT_ON_SCENARIO = "NO_AGREEMENT_ON_SCENARIO"
    PROCEDURE_BLOCKS_SCENARIO = "PROCEDURE_BLOCKS_SCENARIO"
    NO_COOPERATION = "NO_COOPERATION"
    MEDICAL_BARRIER = "MEDICAL_BARRIER"
    DOCUMENTS_UNOBTAINABLE = "DOCUMENTS_UNOBTAINABLE"
    OTHER = "OTHER"


class EscalationOutcome(StrEnum):
    """What the desk decided."""

    UNKNOWN = "UNKNOWN"
    SCENARIO_SET = "SCENARIO_SET"
    REFERRED_BACK = "REFERRED_BACK"
    PROCEDURE_ADVISED = "PROCEDURE_ADVISED"
    EXIT_FROM_LVV = "EXIT_FROM_LVV"


class IdentityCheckKind(StrEnum):
    """Kind of check."""

    UNKNOWN = "UNKNOWN"
    FINGERPRINTS = "FINGERPRINTS"
    EURODAC = "EURODAC"
    SIS = "SIS"
    DOCUMENT_EXAMINATION = "DOCUMENT_EXAMINATION"
    EMBASSY_PRESENTATION = "EMBASSY_PRESENTATION"
    LANGUAGE_ANALYSIS = "LANGUAGE_ANALYSIS"


class CheckResult(StrEnum):
    """Result of a check."""

    UNKNOWN = "UNKNOWN"
    CONFIRMED = "CONFIRMED"
    NO_MATCH = "NO_MATCH"
    CONFLICTING = "CONFLICTING"
    INCONCLUSIVE = "INCONCLUSIVE"
    PENDING = "PENDING"


class FacilityKind(StrEnum):
    """Kind of state reception facility."""

    UNKNOWN = "UNKNOWN"
    DEPARTURE_CENTRE = "DEPARTURE_CENTRE"
    FREEDOM_RESTRICTING_LOCATION = "FREEDOM_RESTRICTING_LOCATION"
    ASYLUM_SEEKERS_CENTRE = "ASYLUM_SEEKERS_CENTRE"
    FAMILY_LOCATION = "FAMILY_LOCATION"
    PROTECTED_RECEPTION = "PROTECTED_RECEPTION"


class CaseOutcome(StrEnum):
    """How the case ended."""

    UNKNOWN = "UNKNOWN"
    INDEPENDENT_DEPARTURE = "INDEPENDENT_DEPARTURE"
    SUPERVISED_DEPARTURE = "SUPERVISED_DEPARTURE"
    ONWARD_MIGRATION = "ONWARD_MIGRATION"
    LEGAL_STAY = "LEGAL_STAY"
    TRANSFER_TO_STATE_RECEPTION = "TRANSFER_TO_STATE_RECEPTION"
    EXIT_NO_DURABLE_SOLUTION = "EXIT_NO_DURABLE_SOLUTION"
    WHEREABOUTS_UNKNOWN = "WHEREABOUTS_UNKNOWN"
    DECEASED = "DECEASED"


class AuditAction(StrEnum):
    """What the gateway did."""

    UNKNOWN = "UNKNOWN"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    REJECTED = "REJECTED"
    RECEIPT_SENT = "RECEIPT_SENT"
    RECEIPT_RECEIVED = "RECEIPT_RECEIVED"
    CHECKPOINT = "CHECKPOINT"


class AuditOutcome(StrEnum):
    """Result of the action."""

    UNKNOWN = "UNKNOWN"
    OK = "OK"
    FAILED = "FAILED"


class KeyAlgorithm(StrEnum):
    """Public key algorithm."""

    UNKNOWN = "UNKNOWN"
    ED25519 = "ED25519"
    X25519 = "X25519"
    MLKEM768_X25519 = "MLKEM768_X25519"


class KeyStatus(StrEnum):
    """Status of a key."""

    UNKNOWN = "UNKNOWN"
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"


class RevocationReason(StrEnum):
    """Why a key was revoked: the CRLReason codes of RFC 5280 §5.3.1 that mean something for
    a party's key (no CA or attribute-authority codes, no certificate hold: a revocation here
    is never undone)."""

    UNKNOWN = "UNKNOWN"
    UNSPECIFIED = "UNSPECIFIED"
    KEY_COMPROMISE = "KEY_COMPROMISE"
    SUPERSEDED = "SUPERSEDED"
    CESSATION_OF_OPERATION = "CESSATION_OF_OPERATION"


class KeyWrapMode(StrEnum):
    """How payload keys reach recipients."""

    UNKNOWN = "UNKNOWN"
    PER_MESSAGE = "PER_MESSAGE"
    EPOCH = "EPOCH"


class SignatureScheme(StrEnum):
    """How the envelope is signed."""

    UNKNOWN = "UNKNOWN"
    ED25519 = "ED25519"
    ED25519_MERKLE_BATCH = "ED25519_MERKLE_BATCH"


class Kem(StrEnum):
    """HPKE KEM of the wrap."""

    UNKNOWN = "UNKNOWN"
    X25519 = "X25519"
    MLKEM768_X25519 = "MLKEM768_X25519"


class ReceiptOutcome(StrEnum):
    """What the recipient did with the message."""

    UNKNOWN = "UNKNOWN"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


class ReceiptReason(StrEnum):
    """Why a recipient refused a message: a reason code of docs/ENVELOPE.md §6.2, never
    free text (a receipt's reason reaches the sender's audit chain)."""

    UNKNOWN = "UNKNOWN"
    TOO_LARGE = "TOO_LARGE"
    MALFORMED = "MALFORMED"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    UNKNOWN_SENDER = "UNKNOWN_SENDER"
    SENDER_KEY_INVALID = "SENDER_KEY_INVALID"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    NOT_A_RECIPIENT = "NOT_A_RECIPIENT"
    POLICY_DENIED = "POLICY_DENIED"
    EXPIRED = "EXPIRED"
    FROM_FUTURE = "FROM_FUTURE"
    REPLAY = "REPLAY"
    DECRYPT_FAILED = "DECRYPT_FAILED"
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"
    PAYLOAD_INVALID = "PAYLOAD_INVALID"
    ATTACHMENT_INVALID = "ATTACHMENT_INVALID"
