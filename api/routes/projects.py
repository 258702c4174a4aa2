from __future__ import annotations

from fastapi import APIRouter

from api import crud
from api.deps import ProjectIdPath, SessionDep
from api.schemas import ErrorOut, ProjectCreate, ProjectOut

router = APIRouter(prefix="/api/projects", tags=["projects"])


@router.post("", status_code=201, response_model=ProjectOut, summary="Create a project",
             responses={409: {"model": ErrorOut, "description": "The name is taken."}})
def create_project(body: ProjectCreate, session: SessionDep) -> ProjectOut:
    return ProjectOut.model_validate(crud.create_project(session, name=body.name, description=body.description))


@router.get("", response_model=list[ProjectOut], summary="List projects")
def list_projects(session: SessionDep) -> list[ProjectOut]:
    return [ProjectOut.model_validate(p) for p in crud.list_projects(session)]


@router.get("/{project_id}", response_model=ProjectOut, summary="One project",
            responses={404: {"model": ErrorOut}})
def get_project(project_id: ProjectIdPath, session: SessionDep) -> ProjectOut:
    return ProjectOut.model_validate(crud.get_project(session, project_id=project_id))
