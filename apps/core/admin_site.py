from django.contrib import admin


class HubAdminSite(admin.AdminSite):
    site_header = "Energy hub — operations"
    site_title = "Energy hub"
    index_title = "Operations"
