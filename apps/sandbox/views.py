from django.http import HttpRequest, HttpResponse


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Sandbox platforms: simulators of DEXMA, Wattics, Volue and an upstream "
                        "provider API are mounted under /sandbox/.", content_type="text/plain")
