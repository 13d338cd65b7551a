"""Project Management: projects, tasks — HTTP routes only; the domain lives in the dotmac layer."""

from dotmac.core.api import Api

api = Api("projects")
app = api.app
