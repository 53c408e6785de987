"""The leads page: every lead with its AI values and live status badges, and a form
to add one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from django_ai_fields.status import with_ai_status

from .forms import LeadForm
from .models import Lead

PAGE_SIZE = 25


@login_required
@permission_required("leads.view_lead", raise_exception=True)
def lead_list(request: HttpRequest) -> HttpResponse:
    can_add = request.user.has_perm("leads.add_lead")
    if request.method == "POST":
        if not can_add:
            raise PermissionDenied
        form = LeadForm(request.POST, request.FILES)
        if form.is_valid():
            lead = form.save()  # its AI jobs are enqueued when the save commits
            messages.success(
                request, _("Added %(lead)s: its AI fields are being generated.") % {"lead": lead}
            )
            return redirect("leads:list")
    else:
        form = LeadForm()
    # Newest first, so an added lead shows at the top while its jobs run.
    page = Paginator(Lead.objects.order_by("-pk"), PAGE_SIZE).get_page(request.GET.get("page"))
    with_ai_status(page.object_list)  # one query for every badge on the page
    context = {"page": page, "leads": page.object_list, "form": form if can_add else None}
    return render(request, "leads/lead_list.html", context)
