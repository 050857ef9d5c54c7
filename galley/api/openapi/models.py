"""Typed shapes of what Galley's API takes and answers, for its OpenAPI document only.

Names and types follow Azure's REST specification (Microsoft.Compute GalleryRP and ComputeRP,
Microsoft.Storage, Microsoft.VirtualMachineImages, Microsoft.ManagedIdentity,
Microsoft.Authorization, Microsoft.Resources). The server never validates with these models: the
domain layer does (its messages and codes are the contract). So every model allows fields it does
not name and every field that the server may leave out or send as null is optional and nullable:
the document must stay true of what the server sends.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    """A JSON object that may carry fields beyond the ones named."""

    model_config = ConfigDict(extra="allow")


def read_only(description: str | None = None) -> Any:
    return Field(None, description=description, json_schema_extra={"readOnly": True})


# ---- errors -------------------------------------------------------------------------------------

class ErrorDetail(Open):
    code: str | None = None
    message: str | None = None
    target: str | None = None
    details: list[ErrorDetail] | None = None


class ErrorResponse(Open):
    """ARM's error body: `{"error": {"code", "message", "target", "details"}}`."""

    error: ErrorDetail


class OAuthErrorResponse(Open):
    """The token endpoint's errors, in Microsoft identity platform's shape."""

    error: str
    error_description: str | None = None
    error_codes: list[int] | None = None
    timestamp: str | None = None
    trace_id: str | None = None
    correlation_id: str | None = None


# ---- common pieces ------------------------------------------------------------------------------

Tags = dict[str, str]


class Sku(Open):
    name: str | None = None
    tier: str | None = None


class SubResource(Open):
    id: str | None = None


class Resource(Open):
    """An ARM resource as answered: the fields every tracked resource carries."""

    id: str | None = read_only("The resource's ARM id")
    name: str | None = read_only()
    type: str | None = read_only()
    location: str | None = None
    tags: Tags | None = None
    properties: dict[str, Any] | None = None


class ListPage(Open):
    """A page of a list: `value`, and `nextLink` while there are more."""

    value: list[dict[str, Any]]
    nextLink: str | None = None


# ---- galleries ----------------------------------------------------------------------------------

class GalleryIdentifier(Open):
    uniqueName: str | None = read_only()


class SharingProfileGroup(Open):
    type: str | None = Field(None, description="Subscriptions or AADTenants")
    ids: list[str] | None = None


class CommunityGalleryInfo(Open):
    publisherUri: str | None = None
    publisherContact: str | None = None
    eula: str | None = None
    publicNamePrefix: str | None = None
    communityGalleryEnabled: bool | None = None
    publicNames: list[str] | None = None


class SharingProfile(Open):
    permissions: str | None = Field(None, description="Private, Groups or Community")
    groups: list[SharingProfileGroup] | None = None
    communityGalleryInfo: CommunityGalleryInfo | None = None


class SoftDeletePolicy(Open):
    isSoftDeleteEnabled: bool | None = None


class GalleryProperties(Open):
    description: str | None = None
    identifier: GalleryIdentifier | None = None
    provisioningState: str | None = read_only()
    sharingProfile: SharingProfile | None = None
    softDeletePolicy: SoftDeletePolicy | None = None


class Gallery(Resource):
    location: str
    properties: GalleryProperties | None = None


class SharingUpdate(Open):
    operationType: str = Field(description="Add, Remove, Reset or EnableCommunity")
    groups: list[SharingProfileGroup] | None = None


# ---- image definitions --------------------------------------------------------------------------

class GalleryImageIdentifier(Open):
    publisher: str
    offer: str
    sku: str


class ResourceRange(Open):
    min: int | None = None
    max: int | None = None


class RecommendedMachineConfiguration(Open):
    vCPUs: ResourceRange | None = None
    memory: ResourceRange | None = None


class Disallowed(Open):
    diskTypes: list[str] | None = None


class ImagePurchasePlan(Open):
    name: str | None = None
    publisher: str | None = None
    product: str | None = None


class GalleryImageFeature(Open):
    name: str | None = None
    value: str | None = None


class GalleryImageProperties(Open):
    description: str | None = None
    eula: str | None = None
    privacyStatementUri: str | None = None
    releaseNoteUri: str | None = None
    osType: str | None = Field(None, description="Windows or Linux")
    osState: str | None = Field(None, description="Generalized or Specialized")
    hyperVGeneration: str | None = Field(None, description="V1 or V2")
    endOfLifeDate: str | None = Field(None, description="ISO 8601 date-time")
    identifier: GalleryImageIdentifier | None = None
    recommended: RecommendedMachineConfiguration | None = None
    disallowed: Disallowed | None = None
    purchasePlan: ImagePurchasePlan | None = None
    features: list[GalleryImageFeature] | None = None
    architecture: str | None = Field(None, description="x64 or Arm64")
    provisioningState: str | None = read_only()


class GalleryImage(Resource):
    location: str
    properties: GalleryImageProperties | None = None


# ---- image versions -----------------------------------------------------------------------------

class TargetRegion(Open):
    name: str
    regionalReplicaCount: int | None = None
    storageAccountType: str | None = None
    encryption: dict[str, Any] | None = None
    excludeFromLatest: bool | None = None


class PublishingProfile(Open):
    targetRegions: list[TargetRegion] | None = None
    replicaCount: int | None = None
    excludeFromLatest: bool | None = None
    publishedDate: str | None = read_only()
    endOfLifeDate: str | None = None
    storageAccountType: str | None = None
    replicationMode: str | None = None


class DiskImageSource(Open):
    id: str | None = None
    uri: str | None = None
    storageAccountId: str | None = None


class OsDiskImage(Open):
    sizeInGB: int | None = read_only()
    hostCaching: str | None = None
    source: DiskImageSource | None = None


class DataDiskImage(OsDiskImage):
    lun: int


class VersionStorageProfile(Open):
    source: DiskImageSource | None = None
    osDiskImage: OsDiskImage | None = None
    dataDiskImages: list[DataDiskImage] | None = None


class SafetyProfile(Open):
    allowDeletionOfReplicatedLocations: bool | None = None


class RegionalReplicationStatus(Open):
    region: str | None = None
    state: str | None = None
    details: str | None = None
    progress: int | None = None


class ReplicationStatus(Open):
    aggregatedState: str | None = None
    summary: list[RegionalReplicationStatus] | None = None


class GalleryImageVersionProperties(Open):
    publishingProfile: PublishingProfile | None = None
    storageProfile: VersionStorageProfile | None = None
    safetyProfile: SafetyProfile | None = None
    replicationStatus: ReplicationStatus | None = read_only("With $expand=ReplicationStatus")
    provisioningState: str | None = read_only()


class GalleryImageVersion(Resource):
    location: str
    properties: GalleryImageVersionProperties | None = None


# ---- disks and snapshots ------------------------------------------------------------------------

class ImageDiskReference(Open):
    id: str | None = None
    sharedGalleryImageId: str | None = None
    communityGalleryImageId: str | None = None
    lun: int | None = None


class CreationData(Open):
    createOption: str = Field(description="Empty, Upload, Copy, FromImage, Import, …")
    storageAccountId: str | None = None
    imageReference: ImageDiskReference | None = None
    galleryImageReference: ImageDiskReference | None = None
    sourceUri: str | None = None
    sourceResourceId: str | None = None
    uploadSizeBytes: int | None = None


class DiskProperties(Open):
    osType: str | None = None
    hyperVGeneration: str | None = None
    creationData: CreationData | None = None
    diskSizeGB: int | None = None
    diskSizeBytes: int | None = read_only()
    uniqueId: str | None = read_only()
    diskState: str | None = read_only()
    timeCreated: str | None = read_only()
    provisioningState: str | None = read_only()


class Disk(Resource):
    location: str
    sku: Sku | None = None
    zones: list[str] | None = None
    properties: DiskProperties | None = None


class SnapshotProperties(DiskProperties):
    incremental: bool | None = None


class Snapshot(Resource):
    location: str
    sku: Sku | None = None
    properties: SnapshotProperties | None = None


class GrantAccessData(Open):
    access: str = Field(description="None, Read or Write")
    durationInSeconds: int
    fileFormat: str | None = Field(None, description="VHD or VHDX")
    getSecureVMGuestStateSAS: bool | None = None


class AccessUri(Open):
    accessSAS: str | None = read_only("The SAS URL of the disk's content")
    securityDataAccessSAS: str | None = read_only()


# ---- managed images -----------------------------------------------------------------------------

class ImageOsDisk(Open):
    osType: str | None = None
    osState: str | None = None
    snapshot: SubResource | None = None
    managedDisk: SubResource | None = None
    blobUri: str | None = None
    caching: str | None = None
    diskSizeGB: int | None = None
    storageAccountType: str | None = None


class ImageDataDisk(ImageOsDisk):
    lun: int


class ImageStorageProfile(Open):
    osDisk: ImageOsDisk | None = None
    dataDisks: list[ImageDataDisk] | None = None
    zoneResilient: bool | None = None


class ImageProperties(Open):
    sourceVirtualMachine: SubResource | None = None
    storageProfile: ImageStorageProfile | None = None
    hyperVGeneration: str | None = None
    provisioningState: str | None = read_only()


class Image(Resource):
    location: str
    properties: ImageProperties | None = None


# ---- storage accounts ---------------------------------------------------------------------------

class Endpoints(Open):
    blob: str | None = None


class StorageAccountProperties(Open):
    primaryEndpoints: Endpoints | None = read_only()
    primaryLocation: str | None = read_only()
    statusOfPrimary: str | None = read_only()
    creationTime: str | None = read_only()
    provisioningState: str | None = read_only()


class StorageAccount(Resource):
    location: str
    sku: Sku | None = None
    kind: str | None = Field(None, description="StorageV2, BlobStorage, …")
    properties: StorageAccountProperties | None = None


class StorageAccountKey(Open):
    keyName: str
    value: str | None = None
    permissions: str | None = Field(None, description="Read or Full")
    creationTime: str | None = None


class StorageAccountKeys(Open):
    keys: list[StorageAccountKey]


class RegenerateKeyRequest(Open):
    keyName: str = Field(description="key1 or key2")


class CheckNameAvailabilityRequest(Open):
    name: str = Field(description="the storage account name to check")
    type: str | None = Field(None, description="Microsoft.Storage/storageAccounts")


class CheckNameAvailabilityResult(Open):
    nameAvailable: bool
    reason: str | None = Field(None, description="AccountNameInvalid or AlreadyExists")
    message: str | None = None


# ---- image templates ----------------------------------------------------------------------------

class UserAssignedIdentityValue(Open):
    principalId: str | None = read_only()
    clientId: str | None = read_only()


class ImageTemplateIdentity(Open):
    type: str | None = Field(None, description="UserAssigned or None")
    userAssignedIdentities: dict[str, UserAssignedIdentityValue | None] | None = None


class ImageTemplateSource(Open):
    type: str = Field(description="PlatformImage, ManagedImage, SharedImageVersion")


class ImageTemplateCustomizer(Open):
    type: str = Field(description="Shell, File, WindowsRestart, PowerShell, …")
    name: str | None = None


class ImageTemplateDistributor(Open):
    type: str = Field(description="ManagedImage, SharedImage or VHD")
    runOutputName: str
    artifactTags: Tags | None = None


class ImageTemplateVmProfile(Open):
    vmSize: str | None = None
    osDiskSizeGB: int | None = None


class ImageTemplateLastRunStatus(Open):
    startTime: str | None = None
    endTime: str | None = None
    runState: str | None = None
    runSubState: str | None = None
    message: str | None = None


class ImageTemplateProperties(Open):
    source: ImageTemplateSource | None = None
    customize: list[ImageTemplateCustomizer] | None = None
    validate_: dict[str, Any] | None = Field(None, alias="validate")
    distribute: list[ImageTemplateDistributor] | None = None
    buildTimeoutInMinutes: int | None = None
    vmProfile: ImageTemplateVmProfile | None = None
    stagingResourceGroup: str | None = None
    lastRunStatus: ImageTemplateLastRunStatus | None = read_only()
    provisioningState: str | None = read_only()
    provisioningError: dict[str, Any] | None = read_only()


class ImageTemplate(Resource):
    location: str
    identity: ImageTemplateIdentity | None = None
    properties: ImageTemplateProperties | None = None


class RunOutputProperties(Open):
    artifactId: str | None = None
    artifactUri: str | None = None
    provisioningState: str | None = None


class RunOutput(Open):
    id: str | None = None
    name: str
    type: str | None = None
    properties: RunOutputProperties | None = None


# ---- user-assigned identities -------------------------------------------------------------------

class UserAssignedIdentityProperties(Open):
    tenantId: str | None = read_only()
    principalId: str | None = read_only()
    clientId: str | None = read_only()
    provisioningState: str | None = read_only()


class UserAssignedIdentity(Resource):
    location: str
    properties: UserAssignedIdentityProperties | None = None


# ---- resource groups, subscriptions, tenants, locations -----------------------------------------

class ResourceGroupProperties(Open):
    provisioningState: str | None = read_only()


class ResourceGroup(Resource):
    location: str
    managedBy: str | None = None
    properties: ResourceGroupProperties | None = None


class ResourceGroupPatch(Open):
    tags: Tags | None = None
    managedBy: str | None = None


class SubscriptionPolicies(Open):
    locationPlacementId: str | None = None
    quotaId: str | None = None
    spendingLimit: str | None = None


class Subscription(Open):
    id: str | None = None
    subscriptionId: str
    tenantId: str | None = None
    displayName: str | None = None
    state: str | None = None
    authorizationSource: str | None = None
    managedByTenants: list[dict[str, Any]] | None = None
    subscriptionPolicies: SubscriptionPolicies | None = None


class Tenant(Open):
    id: str | None = None
    tenantId: str
    displayName: str | None = None
    tenantCategory: str | None = None
    countryCode: str | None = None
    domains: list[str] | None = None
    defaultDomain: str | None = None
    tenantType: str | None = None
    issuer: str | None = None


class Location(Open):
    id: str | None = None
    name: str
    type: str | None = None
    displayName: str | None = None
    regionalDisplayName: str | None = None
    metadata: dict[str, Any] | None = None


# ---- operations ---------------------------------------------------------------------------------

class OperationStatus(Open):
    name: str
    status: str = Field(description="InProgress, Succeeded, Failed or Canceled")
    startTime: str | None = None
    endTime: str | None = None
    error: ErrorDetail | None = None


# ---- role-based access --------------------------------------------------------------------------

class Permission(Open):
    actions: list[str] | None = None
    notActions: list[str] | None = None
    dataActions: list[str] | None = None
    notDataActions: list[str] | None = None


class RoleDefinitionProperties(Open):
    roleName: str | None = None
    type: str | None = None
    description: str | None = None
    assignableScopes: list[str] | None = None
    permissions: list[Permission] | None = None


class RoleDefinition(Open):
    id: str | None = read_only()
    name: str | None = read_only()
    type: str | None = read_only()
    properties: RoleDefinitionProperties | None = None


class RoleAssignmentProperties(Open):
    roleDefinitionId: str
    principalId: str
    principalType: str | None = None
    scope: str | None = read_only()
    description: str | None = None
    condition: str | None = None
    conditionVersion: str | None = None
    createdOn: str | None = read_only()
    updatedOn: str | None = read_only()
    createdBy: str | None = read_only()
    updatedBy: str | None = read_only()
    delegatedManagedIdentityResourceId: str | None = None


class RoleAssignment(Open):
    id: str | None = read_only()
    name: str | None = read_only()
    type: str | None = read_only()
    properties: RoleAssignmentProperties


# ---- Galley's identity management ---------------------------------------------------------------

class NewTenant(Open):
    displayName: str | None = None
    issuer: str | None = Field(None, description="An external OIDC issuer whose tokens this tenant trusts")
    tenantId: str | None = None


class NewSubscription(Open):
    displayName: str | None = None
    tenantId: str | None = None
    subscriptionId: str | None = None


class NewServicePrincipal(Open):
    displayName: str | None = None
    tenantId: str | None = None
    years: float | None = None
    endDate: str | None = None
    role: str | None = None
    scopes: list[str] | None = None


class CredentialReset(Open):
    append: bool | None = None
    years: float | None = None
    endDate: str | None = None


class ServicePrincipal(Open):
    id: str
    appId: str | None = None
    appOwnerOrganizationId: str | None = None
    displayName: str | None = None
    servicePrincipalType: str | None = None
    objectType: str | None = None


class PasswordCredential(Open):
    keyId: str | None = None
    hint: str | None = None
    startDateTime: str | None = None
    endDateTime: str | None = None


class ServicePrincipalWithCredentials(ServicePrincipal):
    passwordCredentials: list[PasswordCredential] | None = None


class ServicePrincipalSecret(ServicePrincipal):
    """The answer that creates a secret: the only time it is shown."""

    password: str
    tenant: str | None = None


class SigningKey(Open):
    kid: str
    current: bool | None = None
    validUntil: float | None = None


class SigningKeys(Open):
    kid: str | None = Field(None, description="The new key, after a rotation")
    value: list[SigningKey]


class Group(Open):
    id: str
    displayName: str | None = None
    tenantId: str | None = None


class NewGroup(Open):
    displayName: str | None = None
    tenantId: str | None = None


class GroupMember(Open):
    memberId: str


class User(Open):
    id: str
    userPrincipalName: str
    displayName: str | None = None
    mailNickname: str | None = None
    tenantId: str | None = None
    objectType: str | None = None


class NewUser(Open):
    name: str | None = None
    userPrincipalName: str | None = None
    password: str = Field(description="8 to 256 characters, three of: lower case, upper case, digits, symbols")
    displayName: str | None = None
    tenantId: str | None = None


class PasswordProfile(Open):
    password: str
    forceChangePasswordNextSignIn: bool | None = None


class GraphNewUser(Open):
    userPrincipalName: str
    passwordProfile: PasswordProfile
    displayName: str | None = None
    mailNickname: str | None = None
    accountEnabled: bool | None = None


class DirectoryObjectsRequest(Open):
    ids: list[str]
    types: list[str] | None = None


class TokenRequest(BaseModel):
    """OAuth 2.0's token request, as a form: client credentials, or for users (identity/sign_in.py)
    an authorization code with its PKCE verifier, a refresh token, or a name and password."""

    grant_type: str = Field(description="client_credentials, authorization_code, refresh_token or password")
    client_id: str | None = None
    client_secret: str | None = None
    scope: str | None = None
    code: str | None = None
    redirect_uri: str | None = None
    code_verifier: str | None = None
    refresh_token: str | None = None
    username: str | None = None
    password: str | None = None


class TokenResponse(Open):
    token_type: str | None = None
    access_token: str
    expires_in: int | None = None
    ext_expires_in: int | None = None
    refresh_token: str | None = None
    id_token: str | None = None


# ---- Resource Graph, platform images, blobs, usage ----------------------------------------------

class GraphQueryOptions(Open):
    top: int | None = Field(None, alias="$top")
    skip: int | None = Field(None, alias="$skip")
    skipToken: str | None = Field(None, alias="$skipToken")
    resultFormat: str | None = Field(None, description="objectArray or table")


class GraphQueryRequest(Open):
    query: str
    subscriptions: list[str] | None = None
    managementGroups: list[str] | None = None
    options: GraphQueryOptions | None = None


class GraphQueryResponse(Open):
    totalRecords: int
    count: int
    resultTruncated: str | None = None
    skipToken: str | None = Field(None, alias="$skipToken")
    data: list[dict[str, Any]] | dict[str, Any]
    facets: list[dict[str, Any]] | None = None


class CatalogEntry(Open):
    """A publisher, offer, sku or version of the platform image catalog, as Azure lists them."""

    name: str
    location: str | None = None
    id: str | None = None
    properties: dict[str, Any] | None = None


class PlatformImage(Open):
    publisher: str
    offer: str
    sku: str
    version: str
    urn: str | None = None
    osType: str | None = None
    hyperVGeneration: str | None = None
    architecture: str | None = None
    virtualSize: int | None = None
    sizeInGb: int | None = None
    createdAt: str | None = None


class Blob(Open):
    account: str
    container: str
    name: str
    size: int
    virtualSize: int | None = None
    url: str | None = None
    azureUrl: str | None = None
    location: str | None = None


class SharedGalleryItem(Open):
    """A gallery, definition or version as a shared or community gallery shows it."""

    name: str
    location: str | None = None
    identifier: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None


# ---- virtual machines ----------------------------------------------------------------------------

class HardwareProfile(Open):
    vmSize: str | None = Field(None, description="A size from GET …/locations/{location}/vmSizes")


class VmManagedDisk(Open):
    id: str | None = None
    storageAccountType: str | None = None


class VmDisk(Open):
    lun: int | None = None
    name: str | None = None
    createOption: str | None = Field(None, description="FromImage, Attach or Empty")
    caching: str | None = None
    diskSizeGB: int | None = None
    managedDisk: VmManagedDisk | None = None
    deleteOption: str | None = Field(None, description="Delete or Detach")
    osType: str | None = None


class VmImageReference(Open):
    id: str | None = None
    publisher: str | None = None
    offer: str | None = None
    sku: str | None = None
    version: str | None = None
    exactVersion: str | None = read_only()


class VmStorageProfile(Open):
    imageReference: VmImageReference | None = None
    osDisk: VmDisk | None = None
    dataDisks: list[VmDisk] | None = None


class SshPublicKey(Open):
    path: str | None = None
    keyData: str | None = None


class SshConfiguration(Open):
    publicKeys: list[SshPublicKey] | None = None


class LinuxConfiguration(Open):
    disablePasswordAuthentication: bool | None = None
    ssh: SshConfiguration | None = None


class OsProfile(Open):
    computerName: str | None = None
    adminUsername: str | None = None
    adminPassword: str | None = Field(None, description="Write only: never returned")
    customData: str | None = Field(None, description="Base64; write only: never returned")
    linuxConfiguration: LinuxConfiguration | None = None


class InstanceViewStatus(Open):
    code: str | None = None
    level: str | None = None
    displayStatus: str | None = None
    message: str | None = None


class VirtualMachineInstanceView(Open):
    computerName: str | None = None
    hyperVGeneration: str | None = None
    statuses: list[InstanceViewStatus] | None = None


class VirtualMachineProperties(Open):
    hardwareProfile: HardwareProfile | None = None
    storageProfile: VmStorageProfile | None = None
    osProfile: OsProfile | None = None
    networkProfile: dict[str, Any] | None = None
    diagnosticsProfile: dict[str, Any] | None = None
    vmId: str | None = read_only()
    timeCreated: str | None = read_only()
    provisioningState: str | None = read_only()
    instanceView: VirtualMachineInstanceView | None = read_only("With $expand=instanceView")


class VirtualMachine(Resource):
    location: str
    properties: VirtualMachineProperties | None = None


class RunCommandParameter(Open):
    name: str
    value: str | None = None


class RunCommandInput(Open):
    commandId: str = Field(description="RunShellScript")
    script: list[str] | None = None
    parameters: list[RunCommandParameter] | None = None


class RunCommandResult(Open):
    value: list[InstanceViewStatus] | None = None


class BootDiagnosticsUris(Open):
    consoleScreenshotBlobUri: str | None = None
    serialConsoleLogBlobUri: str | None = None


class VirtualMachineSize(Open):
    name: str
    numberOfCores: int | None = None
    memoryInMB: int | None = None
    maxDataDiskCount: int | None = None
    osDiskSizeInMB: int | None = None
    resourceDiskSizeInMB: int | None = None


class UsageName(Open):
    value: str | None = None
    localizedValue: str | None = None


class Usage(Open):
    unit: str | None = None
    currentValue: int | None = None
    limit: int | None = None
    name: UsageName | None = None


def page_of(model: type[BaseModel]) -> type[BaseModel]:
    """`{"value": [model], "nextLink"}`, named after the model."""
    return _PAGES.setdefault(model, type(f"{model.__name__}List", (Open,), {
        "__annotations__": {"value": list[model], "nextLink": str | None},
        "nextLink": None, "__module__": __name__}))


_PAGES: dict[type, type] = {}


# ---- resource-group deployments (Microsoft.Resources/deployments) -------------------------------

class DeploymentProperties(Open):
    template: dict[str, Any] | None = Field(None, description="The ARM template itself (templateLink is "
                                                             "not supported)")
    parameters: dict[str, Any] | None = Field(None, description="{name: {value: …}}")
    mode: str | None = Field(None, description="Incremental (Complete is refused)")


class Deployment(Open):
    properties: DeploymentProperties


class DeploymentPropertiesExtended(Open):
    provisioningState: str | None = read_only("Accepted, Running, Succeeded, Failed or Canceled")
    correlationId: str | None = read_only()
    timestamp: str | None = read_only()
    duration: str | None = read_only()
    mode: str | None = read_only()
    templateHash: str | None = read_only()
    parameters: dict[str, Any] | None = read_only("Secure parameters are shown without their value")
    outputs: dict[str, Any] | None = read_only()
    outputResources: list[SubResource] | None = read_only()
    dependencies: list[dict[str, Any]] | None = read_only()
    providers: list[dict[str, Any]] | None = read_only()
    validatedResources: list[SubResource] | None = read_only()
    error: ErrorDetail | None = read_only()


class DeploymentExtended(Open):
    id: str | None = read_only()
    name: str | None = read_only()
    type: str | None = read_only()
    properties: DeploymentPropertiesExtended | None = None


class DeploymentOperationStatus(Open):
    status: str = Field(description="Running, Succeeded, Failed or Canceled")
    error: ErrorDetail | None = None


class DeploymentOperation(Open):
    id: str | None = read_only()
    operationId: str | None = read_only()
    properties: dict[str, Any] | None = read_only("provisioningState, targetResource, statusCode, statusMessage")


class SubnetProperties(Open):
    addressPrefix: str | None = None
    addressPrefixes: list[str] | None = None
    networkSecurityGroup: SubResource | None = None
    provisioningState: str | None = read_only()


class Subnet(Open):
    """A virtual network's subnet (a child resource kept in the network's `subnets`)."""

    id: str | None = read_only()
    name: str | None = read_only()
    type: str | None = read_only()
    properties: SubnetProperties | None = None


class ProviderResourceType(Open):
    resourceType: str | None = None
    locations: list[str] | None = None
    apiVersions: list[str] | None = None


class Provider(Open):
    """A resource provider's registration: the types it serves and their api-versions."""

    id: str | None = read_only()
    namespace: str | None = read_only()
    registrationState: str | None = read_only()
    resourceTypes: list[ProviderResourceType] | None = read_only()


# ---- Microsoft.Network (configuration records: see galley/domain/network.py) ------------------------

class AddressSpace(Open):
    addressPrefixes: list[str] | None = None


class VirtualNetworkProperties(Open):
    addressSpace: AddressSpace | None = None
    subnets: list[Subnet] | None = None
    dhcpOptions: dict[str, Any] | None = None
    enableDdosProtection: bool | None = None
    resourceGuid: str | None = read_only()
    provisioningState: str | None = read_only()


class VirtualNetwork(Resource):
    location: str
    properties: VirtualNetworkProperties | None = None


class SecurityRule(Open):
    id: str | None = read_only()
    name: str | None = None
    properties: dict[str, Any] | None = Field(None, description="protocol, access, direction, priority, "
                                                                "source/destination port ranges and prefixes")


class NetworkSecurityGroupProperties(Open):
    securityRules: list[SecurityRule] | None = None
    defaultSecurityRules: list[SecurityRule] | None = read_only()
    resourceGuid: str | None = read_only()
    provisioningState: str | None = read_only()


class NetworkSecurityGroup(Resource):
    location: str
    properties: NetworkSecurityGroupProperties | None = None


class PublicIPAddressProperties(Open):
    publicIPAllocationMethod: str | None = Field(None, description="Dynamic or Static (no address is given "
                                                                  "either way: ipAddress stays absent)")
    publicIPAddressVersion: str | None = None
    idleTimeoutInMinutes: int | None = None
    dnsSettings: dict[str, Any] | None = None
    resourceGuid: str | None = read_only()
    provisioningState: str | None = read_only()


class PublicIPAddress(Resource):
    location: str
    sku: Sku | None = None
    properties: PublicIPAddressProperties | None = None


class NetworkInterfaceIPConfiguration(Open):
    id: str | None = read_only()
    name: str | None = None
    properties: dict[str, Any] | None = Field(None, description="subnet, publicIPAddress, "
                                                                "privateIPAllocationMethod, privateIPAddress "
                                                                "(10.0.2.15 on the primary), primary")


class NetworkInterfaceProperties(Open):
    ipConfigurations: list[NetworkInterfaceIPConfiguration] | None = None
    networkSecurityGroup: SubResource | None = None
    enableAcceleratedNetworking: bool | None = None
    enableIPForwarding: bool | None = None
    nicType: str | None = read_only()
    resourceGuid: str | None = read_only()
    provisioningState: str | None = read_only()


class NetworkInterface(Resource):
    location: str
    properties: NetworkInterfaceProperties | None = None


# ---- the node's health and the installation's nodes (Galley.Operations) -------------------------

class Liveness(Open):
    status: str = Field(description="ok: the process answers")


class ReadinessCheck(Open):
    status: str = Field(description="ok or failed")
    ms: float | None = Field(None, description="How long the check took (when ok)")
    reason: str | None = Field(None, description="Why it failed: a timeout or an error's type, never its text")


class Readiness(Open):
    status: str = Field(description="ready, or unavailable (a check failed, or the node is draining)")
    checks: dict[str, ReadinessCheck] = Field(description="By name: database, store:{region}, draining")


class NodeOperation(Open):
    operationId: str
    kind: str = Field(description="{resource type}/{action}")
    resourceId: str
    since: str | None = Field(None, description="When the operation started (ISO 8601)")


class NodeUpload(Open):
    kind: str = Field(description="upload")
    resourceId: str = Field(description="The disk or snapshot receiving content (a platform image's content key)")
    until: str = Field(description="When the upload's lease runs out unless renewed (ISO 8601)")


class NodeProperties(Open):
    nodeName: str
    roles: list[str] = Field(description="api, worker, builder")
    url: str | None = None
    version: str | None = None
    state: str = Field(description="Running, Lost (no heartbeat lately) or Stopped")
    startedAt: str | None = None
    lastHeartbeat: str | None = None
    heartbeatAgeSeconds: float | None = None
    work: list[NodeOperation] = Field(default_factory=list, description="Operations its workers hold")
    uploads: list[NodeUpload] = Field(default_factory=list, description="Uploads it is receiving")


class Node(Open):
    id: str | None = read_only()
    name: str | None = read_only("The node's id (one per process)")
    type: str | None = read_only()
    properties: NodeProperties
