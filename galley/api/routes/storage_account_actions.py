"""Storage accounts' actions beside CRUD: account keys and name checks (Microsoft.Storage).

  POST …/providers/Microsoft.Storage/storageAccounts/{a}/listKeys        → {"keys": [key1, key2]}
  POST …/providers/Microsoft.Storage/storageAccounts/{a}/regenerateKey   {"keyName": "key1"} → the new list
  POST /subscriptions/{s}/providers/Microsoft.Storage/checkNameAvailability {"name", "type"}
       → {"nameAvailable", "reason", "message"}   (az storage account create asks it first)

The key actions are Microsoft.Storage/storageAccounts/listkeys/action and …/regeneratekey/action:
Owner and Contributor have them, Reader (*/read) does not. A regenerated key is refused at once.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...domain import account_keys, ids, storage_account
from ...domain.errors import ArmError, InvalidParameter
from ..api_versions import storage_api
from ..wire import json_body, json_response
from .resources import service_of

router = APIRouter(tags=["StorageAccounts"])
ACCOUNT = ("/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}/providers/microsoft.storage"
           "/storageaccounts/{accountName}")
NO_STORE = {"Cache-Control": "no-store"}


def _account(request: Request, subscription_id: str, group: str, name: str):
    account_id = (f"{ids.resource_group_id(subscription_id, group)}/providers/"
                  f"{ids.STORAGE_ACCOUNT_TYPE}/{name}")
    return service_of(request).get(account_id, ids.STORAGE_ACCOUNT_TYPE)


@router.post(ACCOUNT + "/listkeys", operation_id="StorageAccounts_ListKeys")
def list_keys(request: Request, subscriptionId: str, resourceGroupName: str, accountName: str,
              api_version: str = Depends(storage_api)) -> Response:
    account = _account(request, subscriptionId, resourceGroupName, accountName)
    keys = request.app.state.account_keys.keys(account)
    return json_response(account_keys.list_result(keys), headers=NO_STORE)


@router.post(ACCOUNT + "/regeneratekey", operation_id="StorageAccounts_RegenerateKey")
def regenerate_key(request: Request, subscriptionId: str, resourceGroupName: str, accountName: str,
                   api_version: str = Depends(storage_api), body: dict = Depends(json_body)) -> Response:
    account = _account(request, subscriptionId, resourceGroupName, accountName)
    keys = request.app.state.account_keys.regenerate(account, account_keys.key_name_of(body))
    return json_response(account_keys.list_result(keys), headers=NO_STORE)


@router.post("/subscriptions/{subscriptionId}/providers/microsoft.storage/checknameavailability",
             operation_id="StorageAccounts_CheckNameAvailability")
def check_name_availability(request: Request, subscriptionId: str, api_version: str = Depends(storage_api),
                            body: dict = Depends(json_body)) -> Response:
    name = body.get("name")
    if not isinstance(name, str):
        raise InvalidParameter("'name' must be the storage account name to check.", target="name")
    try:
        storage_account.check_name(name)
    except ArmError as error:
        return json_response({"nameAvailable": False, "reason": "AccountNameInvalid", "message": error.message})
    with service_of(request).store.read() as tx:
        taken = tx.find_named(ids.STORAGE_ACCOUNT_TYPE, name) is not None
    if taken:
        return json_response({"nameAvailable": False, "reason": "AlreadyExists",
                              "message": f"The storage account named {name} is already taken."})
    return json_response({"nameAvailable": True})
