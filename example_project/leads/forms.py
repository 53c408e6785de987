from django import forms

from .models import Lead


class LeadForm(forms.ModelForm):
    """The fields a person types; the AI fields are written by the worker."""

    class Meta:
        model = Lead
        fields = ["name", "company", "email", "notes", "logo"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}
