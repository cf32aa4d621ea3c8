"""Serializers of the telemedicine JSON API: acts (list without identity, detail with the trace)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ..models import Act, ActEvent, ActStatus, ActType, Incident, Participant, Transfer, Urgency

# Plain strings (not enums) in the schema: "status" enums of other apps would collide with these.
STATUS_HELP = "État de la demande : " + ", ".join(ActStatus.values) + "."


def _name(user: Any) -> str | None:
    if user is None:
        return None
    return str(user.get_full_name() or user.username)


class ActSummarySerializer(serializers.ModelSerializer):
    """One act in a list: no patient identity (read the act to see it; that read is audited)."""

    act_type = serializers.ChoiceField(choices=ActType.choices)
    status = serializers.CharField(help_text=STATUS_HELP)
    status_label = serializers.CharField(source="get_status_display")
    urgency = serializers.ChoiceField(choices=Urgency.choices)
    requester_structure = serializers.CharField(source="requester_structure.name")
    pool = serializers.CharField(source="pool.name", allow_null=True, default=None)
    role = serializers.SerializerMethodField(help_text="requester (ma demande) ou expert (adressée à moi).")

    class Meta:
        model = Act
        fields = [
            "id",
            "reference",
            "act_type",
            "status",
            "status_label",
            "urgency",
            "requester_structure",
            "pool",
            "role",
            "created_at",
            "sent_at",
            "expires_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_role(self, act: Act) -> str:
        user = self.context["request"].user
        return "requester" if act.requester_id == user.pk else "expert"


class PatientSerializer(serializers.Serializer):
    display_name = serializers.CharField()
    birth_date = serializers.DateField()
    identity_status = serializers.CharField()
    ins = serializers.SerializerMethodField(help_text="Matricule INS, seulement si l'identité est qualifiée.")

    def get_ins(self, patient: Any) -> str | None:
        return str(patient.ins) if patient.may_carry_ins else None


class ParticipantSerializer(serializers.ModelSerializer):
    name = serializers.SerializerMethodField()

    class Meta:
        model = Participant
        fields = ["name", "role", "function", "added_at"]

    def get_name(self, participant: Participant) -> str:
        return participant.name or _name(participant.user) or ""


class IncidentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Incident
        fields = ["code", "description", "occurred_at"]


class EventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = ActEvent
        fields = ["at", "event", "actor", "detail"]

    def get_actor(self, event: ActEvent) -> str | None:
        return _name(event.actor)


class TransferSerializer(serializers.ModelSerializer):
    peer = serializers.CharField(source="peer.name")
    status = serializers.CharField(
        help_text="pending, in_progress, retry, done (images vérifiées sur le PACS), failed, cancelled."
    )

    class Meta:
        model = Transfer
        fields = ["id", "study", "peer", "status", "instances_sent", "instances_total", "verified_at"]


class ActStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField(help_text=STATUS_HELP)
    status_label = serializers.CharField()
    updated_at = serializers.DateTimeField()
    transfers = TransferSerializer(many=True)


class ActDetailSerializer(ActSummarySerializer):
    patient = PatientSerializer()
    clinical_question = serializers.CharField()
    requester = serializers.SerializerMethodField()
    requested_professional = serializers.SerializerMethodField()
    expert = serializers.SerializerMethodField()
    consent_collected_by = serializers.SerializerMethodField()
    participants = ParticipantSerializer(many=True)
    incidents = IncidentSerializer(many=True)
    amendments = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()
    report_signed = serializers.SerializerMethodField()

    class Meta(ActSummarySerializer.Meta):
        fields = [
            *ActSummarySerializer.Meta.fields,
            "patient",
            "clinical_question",
            "requester",
            "requested_professional",
            "expert",
            "consent",
            "consent_at",
            "consent_collected_by",
            "scheduled_at",
            "accepted_at",
            "started_at",
            "ended_at",
            "report_signed_at",
            "report_signed",
            "report_text",
            "prescriptions",
            "closed_at",
            "status_reason",
            "fallback",
            "dmp_document_id",
            "report_message_id",
            "participants",
            "incidents",
            "amendments",
            "events",
        ]
        read_only_fields = fields

    def get_requester(self, act: Act) -> str | None:
        return _name(act.requester)

    def get_requested_professional(self, act: Act) -> str | None:
        return _name(act.requested_professional)

    def get_expert(self, act: Act) -> str | None:
        return _name(act.expert)

    def get_consent_collected_by(self, act: Act) -> str | None:
        return _name(act.consent_collected_by)

    def get_report_signed(self, act: Act) -> bool:
        return act.report_signed_at is not None

    def get_amendments(self, act: Act) -> list[dict[str, Any]]:
        return [
            {"at": a.at.isoformat(), "author": _name(a.author), "text": a.text}
            for a in act.amendments.select_related("author")
        ]

    def get_events(self, act: Act) -> list[dict[str, Any]]:
        events = act.events.select_related("actor").order_by("at", "pk")
        return list(EventSerializer(events, many=True).data)
