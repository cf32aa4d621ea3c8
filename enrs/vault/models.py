"""Encrypted blobs: message bodies, attachments, documents, images. The database keeps only metadata
and, for small blobs, the ciphertext; larger ones go to the file storage (filesystem or S3), encrypted."""

import uuid

from django.db import models


class Blob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    purpose = models.CharField("usage", max_length=50, db_index=True)
    content_type = models.CharField("type de contenu", max_length=150, blank=True)
    size = models.PositiveBigIntegerField("taille en clair (octets)")
    sha256 = models.CharField("empreinte SHA-256 du contenu en clair", max_length=64)
    key_id = models.CharField("clé de chiffrement", max_length=50, db_index=True)
    # Either the ciphertext itself (small blobs, written in the caller's transaction) or the name of the
    # encrypted file in the default storage.
    ciphertext = models.BinaryField("contenu chiffré", null=True, blank=True, editable=False)
    storage_name = models.CharField("fichier chiffré", max_length=255, blank=True)
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    reencrypted_at = models.DateTimeField("rechiffré le", null=True, blank=True)

    class Meta:
        verbose_name = "contenu chiffré"
        verbose_name_plural = "contenus chiffrés"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ciphertext__isnull=False, storage_name="")
                | models.Q(ciphertext__isnull=True) & ~models.Q(storage_name=""),
                name="vault_blob_inline_or_file",
            )
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.id} ({self.size} o, clé {self.key_id})"
