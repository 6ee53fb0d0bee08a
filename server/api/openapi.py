"""GET /api/openapi.json: the HTTP API described for clients and for fuzzing (schemathesis).

Live streams (MJPEG, WebSocket) never end, so they are described in the text of the
document (and README) rather than as operations a fuzzer would call.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

routes = web.RouteTableDef()

ID = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


def _answer(description: str, schema: dict | None = None, media: str = "application/json") -> dict:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = {media: {"schema": schema}}
    return answer


def _errors(*codes: int) -> dict:
    return {str(code): _answer("refused", ERROR) for code in codes}


def _path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


CAMERA = {"type": "object", "required": ["id", "name", "commune", "state"], "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "commune": {"type": "string"},
    "commune_name": {"type": "string"},
    "state": {"type": "string", "enum": ["connecting", "live", "stalled", "offline"]},
    "reason": {"type": ["string", "null"]}, "since": {"type": "number"},
    "codec": {"type": ["string", "null"]}, "width": {"type": ["integer", "null"]},
    "height": {"type": ["integer", "null"]}, "input_fps": {"type": "number"},
    "bitrate_bps": {"type": "number"}, "frame_age": {"type": ["number", "null"]},
    "behind": {"type": ["number", "null"]}, "lag_skips": {"type": "integer"},
    "reconnects_last_hour": {"type": "integer"}, "last_error": {"type": ["string", "null"]},
    "decoding": {"type": "string", "enum": ["full", "reduced", "keyframes"]},
    "picture": {"type": ["object", "null"], "properties": {
        "ok": {"type": "boolean"}, "reference_at": {"type": ["number", "null"]},
        "checks": {"type": "array", "items": {"type": "string"}},
        "conditions": {"type": "array", "items": {"type": "object", "properties": {
            "condition": {"type": "string", "enum": ["frozen", "black", "covered", "blurred", "moved",
                                                     "too_dark", "too_bright"]},
            "since": {"type": "number"}}}}}}}}
CELL = {"type": "object", "required": ["row", "column"], "additionalProperties": False, "properties": {
    "camera": {"type": ["string", "null"]}, "row": {"type": "integer", "minimum": 0},
    "column": {"type": "integer", "minimum": 0}, "rows": {"type": "integer", "minimum": 1},
    "columns": {"type": "integer", "minimum": 1}}}
WALL = {"type": "object", "required": ["id", "name", "layout", "cells"], "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "size": {"type": "string"},
    "fps": {"type": "number"}, "layout": {"type": "string"}, "automatic": {"type": "boolean"},
    "cells": {"type": "array", "items": CELL}, "tour": {"type": ["object", "null"]}}}
WALL_CHANGE = {"type": "object", "additionalProperties": False, "properties": {
    "layout": {"type": "string", "pattern": "^[1-8]x[1-8]$"},
    "cameras": {"type": "array", "items": {"type": ["string", "null"]}, "maxItems": 64},
    "cells": {"type": "array", "items": CELL, "maxItems": 64},
    "tour": {"type": ["object", "null"], "properties": {
        "seconds": {"type": "number"}, "pages": {"type": "array", "items": {
            "type": "array", "items": {"type": ["string", "null"]}}}}}}}
SNAPSHOT = {"200": _answer("a JPEG", {"type": "string", "format": "binary"}, "image/jpeg"),
            **_errors(400, 401, 404, 429, 503)}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Vigie", "version": "1", "description": (
            "Video walls from RTSP cameras. Sessions: POST /login (cookie). Live streams, not "
            "listed as operations because they never end: GET /walls/{id}/mjpeg, "
            "/cameras/{id}/mjpeg, /mosaic/mjpeg?cameras=a,b (multipart MJPEG) and the "
            "WebSockets /walls/{id}/ws, /cameras/{id}/ws, /mosaic/ws (?format=fmp4|jpeg).")},
        "paths": {
            "/healthz": {"get": {"operationId": "healthz", "responses": {"200": _answer("alive")}}},
            "/readyz": {"get": {"operationId": "readyz", "responses": {
                "200": _answer("ready"), "503": _answer("starting")}}},
            "/login": {"post": {"operationId": "login", "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "user": {"type": "string"}, "password": {"type": "string"},
                    "token": {"type": "string"}}}}}},
                "responses": {"200": _answer("logged in"), **_errors(400, 401, 403, 415, 429)}}},
            "/logout": {"post": {"operationId": "logout", "responses": {
                "200": _answer("logged out"), **_errors(401, 403)}}},
            "/api/me": {"get": {"operationId": "me", "responses": {"200": _answer("who you are"), **_errors(401)}}},
            "/api/status": {"get": {"operationId": "status", "responses": {
                "200": _answer("server status"), **_errors(401, 403)}}},
            "/api/cameras": {"get": {"operationId": "cameras", "responses": {
                "200": _answer("cameras you may see", {"type": "array", "items": CAMERA}), **_errors(401)}}},
            "/api/cameras/{camera_id}": {"get": {"operationId": "camera", "parameters": [_path_id("camera_id")],
                "responses": {"200": _answer("a camera", CAMERA), **_errors(401, 404)}}},
            "/api/cameras/{camera_id}/picture/reference": {"post": {
                "operationId": "accept_picture_reference", "parameters": [_path_id("camera_id")],
                "responses": {"200": _answer("the current view is the camera's reference", {
                    "type": "object", "properties": {"camera": {"type": "string"},
                                                     "reference_at": {"type": "number"}}}),
                    **_errors(401, 403, 404, 409, 503)}}},
            "/api/demo/cameras/{camera_id}/fault": {"post": {
                "operationId": "demo_fault", "parameters": [_path_id("camera_id")],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"fault": {
                        "type": ["string", "null"], "enum": ["freeze", "black", "cover", "blur", None]}}}}}},
                "responses": {"200": _answer("the demo camera's fault"), **_errors(400, 401, 403, 404)}}},
            "/api/walls": {"get": {"operationId": "walls", "responses": {
                "200": _answer("walls you may see", {"type": "array", "items": WALL}), **_errors(401)}}},
            "/api/walls/{wall_id}": {
                "get": {"operationId": "wall", "parameters": [_path_id("wall_id")],
                        "responses": {"200": _answer("a wall", WALL), **_errors(401, 404)}},
                "put": {"operationId": "change_wall", "parameters": [_path_id("wall_id")],
                        "requestBody": {"required": True, "content": {"application/json": {"schema": WALL_CHANGE}}},
                        "responses": {"200": _answer("the changed wall", WALL), **_errors(400, 401, 403, 404, 409)}}},
            "/api/audit": {"get": {"operationId": "audit", "parameters": [
                {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                for name in ("user", "camera", "commune", "since", "until", "kind", "limit", "offset", "format")],
                "responses": {"200": _answer("journal rows"), **_errors(400, 401, 403)}}},
            "/api/availability": {"get": {"operationId": "availability", "parameters": [
                {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                for name in ("commune", "camera", "since", "until", "format")],
                "responses": {"200": _answer("stream-up, picture-usable and unknown %, incidents, mean time "
                                             "to repair, open incidents, per camera and commune (json, csv)"),
                              **_errors(400, 401, 403)}}},
            "/api/incidents": {"get": {"operationId": "incidents", "responses": {
                "200": _answer("incidents open now with their acknowledgement; planned works in force or to come"),
                **_errors(401, 403)}}},
            "/api/incidents/{incident}/acknowledge": {"post": {
                "operationId": "acknowledge_incident", "parameters": [_path_id("incident")],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"comment": {"type": "string", "maxLength": 500}}}}}},
                "responses": {"200": _answer("acknowledged (journaled)"), **_errors(400, 401, 403, 404)}}},
            "/api/works": {"post": {
                "operationId": "plan_works", "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "cameras": {"type": "array", "items": {"type": "string"}},
                        "communes": {"type": "array", "items": {"type": "string"}},
                        "start": {"type": ["string", "number"]}, "end": {"type": ["string", "number"]},
                        "reason": {"type": "string", "maxLength": 500}}}}}},
                "responses": {"201": _answer("planned works (journaled)"), **_errors(400, 401, 403)}}},
            "/api/works/{key}": {"delete": {"operationId": "cancel_works", "parameters": [_path_id("key")],
                "responses": {"200": _answer("cancelled (journaled)"), **_errors(401, 403, 404)}}},
            "/api/cameras/{camera_id}/picture/reference.jpg": {"get": {
                "operationId": "picture_reference", "parameters": [_path_id("camera_id")],
                "responses": {"200": _answer("the reference, grey, masked", {"type": "string", "format": "binary"},
                                             "image/jpeg"), **_errors(401, 404)}}},
            "/api/sessions": {
                "get": {"operationId": "sessions", "parameters": [
                    {"name": "user", "in": "query", "required": False, "schema": {"type": "string"}}],
                    "responses": {"200": _answer("sessions: user, role, created, last seen, address, "
                                                 "user agent, open views; never a token"),
                                  **_errors(400, 401, 403)}},
                "delete": {"operationId": "end_sessions", "parameters": [
                    {"name": "user", "in": "query", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": _answer("the user's sessions ended, and their open views"),
                                  **_errors(400, 401, 403)}}},
            "/api/cluster": {"get": {"operationId": "cluster", "responses": {
                "200": _answer("nodes (name, web and RTSP addresses, since, cameras, viewers) and each "
                               "camera's owner; no nodes when running alone"), **_errors(401, 403)}}},
            "/api/admin/reload": {"post": {"operationId": "reload", "responses": {
                "200": _answer("reloaded"), **_errors(400, 401, 403)}}},
            "/metrics": {"get": {"operationId": "metrics", "responses": {
                "200": _answer("Prometheus text", {"type": "string"}, "text/plain"), **_errors(401, 403)}}},
            "/walls/{wall_id}/snapshot.jpg": {"get": {"operationId": "wall_snapshot",
                "parameters": [_path_id("wall_id")], "responses": SNAPSHOT}},
            "/cameras/{camera_id}/snapshot.jpg": {"get": {"operationId": "camera_snapshot",
                "parameters": [_path_id("camera_id")], "responses": SNAPSHOT}},
            "/mosaic/snapshot.jpg": {"get": {"operationId": "mosaic_snapshot", "parameters": [
                {"name": "cameras", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "layout", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "size", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "fps", "in": "query", "required": False, "schema": {"type": "string"}}],
                "responses": SNAPSHOT}},
        },
    }


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
