"""What AWS authorizes a boto3 call on: the IAM action(s) and the resource ARN of each, as the Service
Authorization Reference (docs.aws.amazon.com/service-authorization/latest/reference/) lists them.

A test oracle, kept apart from the code it judges: stockstream's printed policy (resources.deployer_policy)
is checked against it, so it must not be derived from the same source. The rule is `prefix:OperationName` on
the resource the call names; the exceptions are written out (S3's renamed actions, the service prefixes that
differ from boto3's client names), and so are the actions AWS authorizes implicitly behind a call: iam:PassRole
for a role handed to a service, a TagResource for tags given at creation, s3:PutBucketOwnershipControls for
CreateBucket's ObjectOwnership, the logs delivery actions behind a state machine's logging, and the ECR layer
actions behind an image push. A call with no rule here is an error, so a new call cannot go unchecked.

Not listed: ecr:GetRepositoryPolicy and ecr:SetRepositoryPolicy behind CreateFunction from an image, which
Lambda asks of the caller only to add a repository policy letting it pull when there is none (deploy sets that
policy itself on the repository it builds into).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Need:
    """One authorization AWS makes: `action` on `resource`, with the condition keys it supplies."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Where:
    partition: str
    account: str
    region: str

    def arn(self, service: str, resource: str, *, regional: bool = True, account: bool = True) -> str:
        return (f"arn:{self.partition}:{service}:{self.region if regional else ''}:"
                f"{self.account if account else ''}:{resource}")


# the IAM prefix where it is not boto3's client name
PREFIXES = {"stepfunctions": "states"}

# S3 authorizes these operations under another action's name
S3_ACTIONS = {
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "HeadObject": "GetObject",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "DeleteObjects": "DeleteObject",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
}
S3_OBJECT_OPERATIONS = {"GetObject", "HeadObject", "PutObject", "DeleteObject"}
S3_BUCKET_OPERATIONS = {"CreateBucket", "HeadBucket", "ListObjects", "ListObjectsV2", "GetBucketLocation",
                        "GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy", "GetPublicAccessBlock",
                        "PutPublicAccessBlock", "GetBucketEncryption", "PutBucketEncryption", "GetBucketTagging",
                        "PutBucketTagging", "GetBucketLifecycleConfiguration", "PutBucketLifecycleConfiguration"}

# Step Functions' logging to CloudWatch Logs goes through a log delivery the caller sets up
# (docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html): these, on "*", for a create or update with logging
LOG_DELIVERY_ACTIONS = ("logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                        "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                        "logs:DescribeResourcePolicies", "logs:DescribeLogGroups")

# What `docker push` (or podman's) does against ECR: the login, a check of which layers exist, the upload of
# the others, the manifest (and a look at the tag it may already have)
PUSH_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage")

# the creations that take tags, and the action AWS also asks for when they do
TAG_ON_CREATE = {
    ("iam", "CreateRole"): ("Tags", "iam:TagRole"),
    ("lambda", "CreateFunction"): ("Tags", "lambda:TagResource"),
    ("stepfunctions", "CreateStateMachine"): ("tags", "states:TagResource"),
    ("events", "PutRule"): ("Tags", "events:TagResource"),
    ("sns", "CreateTopic"): ("Tags", "sns:TagResource"),
    ("logs", "CreateLogGroup"): ("tags", "logs:TagResource"),
    ("cloudwatch", "PutMetricAlarm"): ("Tags", "cloudwatch:TagResource"),
    ("ecr", "CreateRepository"): ("tags", "ecr:TagResource"),
    ("glue", "CreateDatabase"): ("Tags", "glue:TagResource"),
    ("athena", "CreateWorkGroup"): ("Tags", "athena:TagResource"),
}

# operations AWS authorizes on no resource of their own
UNSCOPED = {("sts", "GetCallerIdentity"), ("lambda", "GetAccountSettings"), ("stepfunctions", "ListStateMachines"),
            ("cloudwatch", "DescribeAlarms"), ("logs", "DescribeLogGroups"), ("ecr", "GetAuthorizationToken")}


def _s3(where: Where, operation: str, params: dict) -> list[Need]:
    bucket = where.arn("s3", params["Bucket"], regional=False, account=False)
    action = f"s3:{S3_ACTIONS.get(operation, operation)}"
    if operation in S3_OBJECT_OPERATIONS:
        return [Need(action, f"{bucket}/{params['Key']}")]
    if operation == "DeleteObjects":
        return [Need(action, f"{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]]
    if operation not in S3_BUCKET_OPERATIONS:
        raise KeyError(f"s3:{operation}")
    needs = [Need(action, bucket)]
    if operation == "CreateBucket" and "ObjectOwnership" in params:
        needs.append(Need("s3:PutBucketOwnershipControls", bucket))
    return needs


def _role_arn(where: Where, params: dict) -> str:
    return where.arn("iam", f"role/{params['RoleName']}", regional=False)


def _named(service: str, kind: str, key: str, separator: str = ":") -> Callable[[Where, dict], list[str]]:
    """The resource a parameter names, by name or already as an ARN."""
    def resources(where: Where, params: dict) -> list[str]:
        value = params[key]
        return [value if value.startswith("arn:") else where.arn(service, f"{kind}{separator}{value}")]
    return resources


def _each(service: str, kind: str, key: str, separator: str = ":", regional: bool = True) -> Callable[[Where, dict], list[str]]:
    def resources(where: Where, params: dict) -> list[str]:
        return [where.arn(service, f"{kind}{separator}{value}", regional=regional) for value in params[key]]
    return resources


def _given(key: str) -> Callable[[Where, dict], list[str]]:
    return lambda where, params: [params[key]]


def _glue(database_key: str, table_key: str | None = None, *, contents: bool = False) -> Callable[[Where, dict], list[str]]:
    """Glue authorizes a call on the catalog, the database and the table it names (a database's deletion on
    everything in it too)."""
    def resources(where: Where, params: dict) -> list[str]:
        database = _dig(params, database_key)
        arns = [where.arn("glue", "catalog"), where.arn("glue", f"database/{database}")]
        if table_key:
            arns.append(where.arn("glue", f"table/{database}/{_dig(params, table_key)}"))
        if contents:
            arns += [where.arn("glue", f"table/{database}/*"), where.arn("glue", f"userDefinedFunction/{database}/*")]
        return arns
    return resources


def _dig(params: dict, path: str) -> str:
    for part in path.split("."):
        params = params[part]
    return params  # type: ignore[return-value]


_function = _named("lambda", "function", "FunctionName")
_repository = _named("ecr", "repository", "repositoryName", "/")
_log_group = _named("logs", "log-group", "logGroupName")
_rule_by_name = _named("events", "rule", "Name", "/")
_rule = _named("events", "rule", "Rule", "/")

# (service, operation) -> the resources the call is authorized on
RESOURCES: dict[tuple[str, str], Callable[[Where, dict], list[str]]] = {
    **{("lambda", op): _function for op in (
        "GetFunction", "GetFunctionConfiguration", "CreateFunction", "UpdateFunctionConfiguration",
        "UpdateFunctionCode", "DeleteFunction", "GetFunctionConcurrency", "PutFunctionConcurrency",
        "DeleteFunctionConcurrency")},
    ("lambda", "TagResource"): _given("Resource"),
    ("lambda", "ListTags"): _given("Resource"),
    ("stepfunctions", "CreateStateMachine"): lambda w, p: [w.arn("states", f"stateMachine:{p['name']}")],
    **{("stepfunctions", op): _given("stateMachineArn") for op in (
        "UpdateStateMachine", "DescribeStateMachine", "DeleteStateMachine", "StartExecution", "ListExecutions")},
    ("stepfunctions", "DescribeExecution"): _given("executionArn"),
    ("stepfunctions", "TagResource"): _given("resourceArn"),
    ("stepfunctions", "ListTagsForResource"): _given("resourceArn"),
    **{("events", op): _rule_by_name for op in ("DescribeRule", "PutRule", "DeleteRule")},
    **{("events", op): _rule for op in ("PutTargets", "RemoveTargets", "ListTargetsByRule")},
    ("events", "TagResource"): _given("ResourceARN"),
    ("events", "ListTagsForResource"): _given("ResourceARN"),
    ("sns", "CreateTopic"): lambda w, p: [w.arn("sns", p["Name"])],
    **{("sns", op): _given("TopicArn") for op in ("GetTopicAttributes", "Subscribe", "ListSubscriptionsByTopic",
                                                  "DeleteTopic")},
    ("sns", "TagResource"): _given("ResourceArn"),
    ("sns", "ListTagsForResource"): _given("ResourceArn"),
    **{("logs", op): _log_group for op in ("CreateLogGroup", "DeleteLogGroup", "PutRetentionPolicy", "FilterLogEvents")},
    ("logs", "TagResource"): _given("resourceArn"),
    ("logs", "ListTagsForResource"): _given("resourceArn"),
    ("cloudwatch", "PutMetricAlarm"): _named("cloudwatch", "alarm", "AlarmName"),
    ("cloudwatch", "DeleteAlarms"): _each("cloudwatch", "alarm", "AlarmNames"),
    ("cloudwatch", "TagResource"): _given("ResourceARN"),
    ("cloudwatch", "ListTagsForResource"): _given("ResourceARN"),
    **{("cloudwatch", op): lambda w, p: [w.arn("cloudwatch", f"dashboard/{p['DashboardName']}", regional=False)]
       for op in ("GetDashboard", "PutDashboard")},
    ("cloudwatch", "DeleteDashboards"): _each("cloudwatch", "dashboard", "DashboardNames", "/", regional=False),
    **{("ecr", op): _repository for op in (
        "CreateRepository", "DeleteRepository", "DescribeImages", "GetRepositoryPolicy", "SetRepositoryPolicy",
        "GetLifecyclePolicy", "PutLifecyclePolicy", "BatchGetImage", "PutImage", "BatchDeleteImage")},
    ("ecr", "DescribeRepositories"): _each("ecr", "repository", "repositoryNames", "/"),
    ("ecr", "TagResource"): _given("resourceArn"),
    ("ecr", "ListTagsForResource"): _given("resourceArn"),
    ("kms", "DescribeKey"): _named("kms", "key", "KeyId", "/"),
    ("glue", "CreateDatabase"): _glue("DatabaseInput.Name"),
    ("glue", "GetDatabase"): _glue("Name"),
    ("glue", "DeleteDatabase"): _glue("Name", contents=True),
    ("glue", "GetTable"): _glue("DatabaseName", "Name"),
    ("glue", "DeleteTable"): _glue("DatabaseName", "Name"),
    ("glue", "CreateTable"): _glue("DatabaseName", "TableInput.Name"),
    ("glue", "UpdateTable"): _glue("DatabaseName", "TableInput.Name"),
    ("glue", "GetTags"): _given("ResourceArn"),
    ("glue", "TagResource"): _given("ResourceArn"),
    ("athena", "CreateWorkGroup"): _named("athena", "workgroup", "Name", "/"),
    **{("athena", op): _named("athena", "workgroup", "WorkGroup", "/") for op in (
        "GetWorkGroup", "UpdateWorkGroup", "DeleteWorkGroup", "StartQueryExecution")},
    ("athena", "TagResource"): _given("ResourceARN"),
    ("athena", "ListTagsForResource"): _given("ResourceARN"),
}
IAM_ROLE_OPERATIONS = {"GetRole", "CreateRole", "DeleteRole", "UpdateAssumeRolePolicy", "GetRolePolicy",
                       "PutRolePolicy", "DeleteRolePolicy", "ListRolePolicies", "ListAttachedRolePolicies",
                       "DetachRolePolicy", "TagRole", "ListRoleTags"}


def _pass_role(role_arn: str, service: str) -> Need:
    return Need("iam:PassRole", role_arn, (("iam:PassedToService", service),))


def _implied(where: Where, service: str, operation: str, params: dict, resources: list[str]) -> list[Need]:
    """What AWS also authorizes behind the call."""
    needs = []
    tags = TAG_ON_CREATE.get((service, operation))
    if tags and params.get(tags[0]):
        needs += [Need(tags[1], r) for r in resources]
    if service == "lambda" and params.get("Role"):  # CreateFunction, UpdateFunctionConfiguration
        needs.append(_pass_role(params["Role"], "lambda.amazonaws.com"))
    if service == "stepfunctions" and operation in ("CreateStateMachine", "UpdateStateMachine"):
        if params.get("roleArn"):
            needs.append(_pass_role(params["roleArn"], "states.amazonaws.com"))
        if (params.get("loggingConfiguration") or {}).get("destinations"):
            needs += [Need(action, "*") for action in LOG_DELIVERY_ACTIONS]
    if service == "events" and operation == "PutTargets":
        needs += [_pass_role(t["RoleArn"], "events.amazonaws.com") for t in params["Targets"] if t.get("RoleArn")]
    return needs


def needs_of_call(where: Where, service: str, operation: str, params: dict[str, Any]) -> list[Need]:
    """Every authorization a boto3 call (client name, the API's OperationName, its params) needs."""
    prefix = PREFIXES.get(service, service)
    action = f"{prefix}:{operation}"
    if service == "s3":
        return _s3(where, operation, params)
    if (service, operation) in UNSCOPED:
        return [Need(action, "*")]
    if service == "iam" and operation in IAM_ROLE_OPERATIONS:
        resources = [_role_arn(where, params)]
    elif (service, operation) in RESOURCES:
        resources = RESOURCES[(service, operation)](where, params)
    else:
        raise KeyError(f"no rule for {service}:{operation}: add what AWS authorizes it on to tests/iam_oracle.py")
    return [Need(action, r) for r in resources] + _implied(where, service, operation, params, resources)


def needs_of_push(where: Where, image_uri: str) -> list[Need]:
    """A BuildImage instruction's push to ECR (made by the container engine, not boto3)."""
    repository = image_uri.split("/", 1)[1].rsplit(":", 1)[0].split("@", 1)[0]
    arn = where.arn("ecr", f"repository/{repository}")
    return [Need("ecr:GetAuthorizationToken", "*"), *(Need(action, arn) for action in PUSH_ACTIONS)]


def denied(policy: dict, needs: list[Need]) -> list[Need]:
    """The needs `policy` does not grant, by moto's IAM evaluator (moto.iam.access_control.IAMPolicy)."""
    import json

    from moto.iam.access_control import IAMPolicy, PermissionResult

    evaluator = IAMPolicy(json.dumps(policy))
    return [need for need in needs
            if evaluator.is_action_permitted(need.action, need.resource, incoming_condition_values=dict(need.context))
            != PermissionResult.PERMITTED]
