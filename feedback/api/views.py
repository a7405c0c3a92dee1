"""REST API v1 of the feedback loop: predictions (classes or tags), their confirmation
or correction, the threshold that sends unsure ones to the queue, the mistakes review
(classes or tags), and a project's progress."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import Pagination, paginated
from feedback import selectors, services
from feedback.access import prediction_access
from feedback.models import (
    FeedbackSettings,
    LabelScore,
    Prediction,
    ReviewScan,
    TagLabelScore,
    TagSuspect,
)
from labeling import access
from labeling.api.serializers import FileResultOutput, ImageOutput, NumberField, validated
from labeling.models import Project


class ClassScoreOutput(serializers.Serializer):
    class_id = serializers.IntegerField()
    confidence = serializers.FloatField()


class TagScoreOutput(serializers.Serializer):
    tag = serializers.IntegerField()
    name = serializers.CharField()
    probability = serializers.FloatField()
    threshold = serializers.FloatField()
    present = serializers.BooleanField(help_text="Predicted present: probability >= threshold.")


def _tag_names(context: dict, project_id: int) -> dict[int, str]:
    """The project's tag names, read once per response (a page lists many predictions)."""
    cache = context.setdefault("tag_names", {})
    if project_id not in cache:
        cache[project_id] = selectors.tag_names(project=Project(pk=project_id))
    return cache[project_id]


class PredictionOutput(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="model_version.number", allow_null=True)
    predicted_class_name = serializers.CharField(
        source="predicted_class.name", allow_null=True, default=None
    )
    top = ClassScoreOutput(many=True)
    uncertain = serializers.BooleanField(source="is_uncertain")
    resolved_by = serializers.CharField(
        source="resolved_by.username", allow_null=True, default=None
    )
    tags = serializers.SerializerMethodField(
        help_text="Multi-label projects: every tag of the version with its probability, "
        "threshold and whether it is predicted present (empty for single-label)."
    )
    predicted_tags = serializers.ListField(child=serializers.IntegerField())
    resolved_tags = serializers.ListField(child=serializers.IntegerField(), allow_null=True)

    class Meta:
        model = Prediction
        fields = [
            "id",
            "image",
            "status",
            "model_version",
            "predicted_class",
            "predicted_class_name",
            "confidence",
            "top",
            "uncertain",
            "uncertain_reason",
            "error",
            "created_at",
            "resolved_class",
            "resolved_by",
            "resolved_at",
            "annotation",
            "tags",
            "predicted_tags",
            "resolved_tags",
            "tag_save_id",
        ]

    @extend_schema_field(TagScoreOutput(many=True))
    def get_tags(self, prediction: Prediction) -> list[dict]:
        if not prediction.tag_scores:
            return []
        names = _tag_names(self.context, prediction.project_id)
        return [
            {
                "tag": t["tag_id"],
                "name": names.get(t["tag_id"], ""),
                "probability": t["probability"],
                "threshold": t["threshold"],
                "present": t["present"],
            }
            for t in prediction.tag_scores
        ]


class PredictInput(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)
    top_k = serializers.IntegerField(min_value=1, max_value=services.MAX_TOP_K, default=3)


class PredictOutput(serializers.Serializer):
    predictions = PredictionOutput(many=True)
    files = FileResultOutput(many=True)


class PredictionListApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=Prediction.Status.values)],
        responses=paginated(PredictionOutput),
        operation_id="v1_projects_predictions_list",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(user=request.user, project_id=project_id)
        predictions = selectors.prediction_list(project=project)
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted not in Prediction.Status.values:
                raise serializers.ValidationError({"status": "Unknown status."})
            predictions = predictions.filter(status=wanted)
        paginator = Pagination()
        page = paginator.paginate_queryset(predictions, request, view=self)
        return paginator.get_paginated_response(PredictionOutput(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": PredictInput},
        responses={
            200: PredictOutput,
            202: PredictOutput,
            400: OpenApiResponse(
                description="No file, a bad top_k, no model yet, or every file refused."
            ),
        },
        description="Predict one or many images with the active model. Every image is "
        "kept (source feedback). 200 when all are answered; 202 when the worker has not "
        "answered within the wait (poll the predictions); 400 when no file was usable.",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(user=request.user, project_id=project_id)
        data = validated(
            PredictInput,
            {
                **{k: v for k, v in request.data.items() if k != "files"},
                "files": request.FILES.getlist("files"),
            },
        )
        batch = services.predictions_request(
            project=project, files=data["files"], user=request.user, top_k=data["top_k"]
        )
        predictions = selectors.predictions_wait(
            prediction_ids=[p.pk for p in batch.predictions],
            timeout=settings.FEEDBACK["PREDICT_WAIT_SECONDS"],
        )
        body = PredictOutput({"predictions": predictions, "files": batch.files}).data
        if not predictions:
            code = status.HTTP_400_BAD_REQUEST
        elif any(p.status == Prediction.Status.PENDING for p in predictions):
            code = status.HTTP_202_ACCEPTED
        else:
            code = status.HTTP_200_OK
        return Response(body, status=code)


class PredictionDetailApi(APIView):
    @extend_schema(responses=PredictionOutput)
    def get(self, request: Request, project_id: int, prediction_id: int) -> Response:
        prediction = prediction_access(
            user=request.user, project_id=project_id, prediction_id=prediction_id
        )
        return Response(PredictionOutput(prediction).data)


class ResolveInput(serializers.Serializer):
    label_class = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="Single-label projects: the right class; leave out to confirm.",
    )
    present = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        allow_empty=True,
        help_text="Multi-label projects: the ids of the tags present (every other active "
        "tag is saved absent); leave out to confirm the tags predicted present.",
    )


class PredictionResolveApi(APIView):
    @extend_schema(
        request=ResolveInput,
        responses=PredictionOutput,
        description="Confirm the prediction, or correct it with the right class (or, in a "
        "multi-label project, the tags present): the image becomes a labeled image of the "
        "dataset. 400 for a prediction still pending or failed, or a tag id that is not an "
        "active tag of the project; nothing is saved then.",
    )
    def post(self, request: Request, project_id: int, prediction_id: int) -> Response:
        prediction = prediction_access(
            user=request.user, project_id=project_id, prediction_id=prediction_id
        )
        data = validated(ResolveInput, request.data)
        class_id = data.get("label_class")
        label_class = (
            access.label_class_access(user=request.user, project_id=project_id, class_id=class_id)
            if class_id
            else None
        )
        prediction = services.prediction_resolve(
            prediction=prediction,
            label_class=label_class,
            user=request.user,
            present=data.get("present"),
        )
        return Response(PredictionOutput(prediction).data)


class LabelScoreOutput(serializers.ModelSerializer):
    image = ImageOutput()
    label_name = serializers.CharField(source="label_class.name")
    suggested_name = serializers.CharField(source="suggested_class.name")

    class Meta:
        model = LabelScore
        fields = [
            "image",
            "label_class",
            "label_name",
            "quality",
            "suggested_class",
            "suggested_name",
            "suggested_confidence",
        ]


class TagSuspectOutput(serializers.ModelSerializer):
    name = serializers.CharField(source="tag.name")

    class Meta:
        model = TagSuspect
        fields = ["tag", "name", "state", "probability", "quality", "is_issue"]


class TagMistakeOutput(serializers.ModelSerializer):
    image = ImageOutput()
    suspects = TagSuspectOutput(source="live_suspects", many=True)

    class Meta:
        model = TagLabelScore
        fields = ["image", "quality", "is_issue", "suspects"]


class ReviewScanOutput(serializers.ModelSerializer):
    requested_by = serializers.CharField(
        source="requested_by.username",
        allow_null=True,
        default=None,
        help_text="Who asked for it; null for a scan the scheduler started.",
    )

    class Meta:
        model = ReviewScan
        fields = [
            "id",
            "status",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "labeled",
            "issues",
            "duplicate_pairs",
            "error",
        ]


class MistakeListApi(APIView):
    @extend_schema(
        responses=paginated(LabelScoreOutput),
        operation_id="v1_projects_review_mistakes_list",
        description="Labels the out-of-sample model confidently disputes, most suspect "
        "first. In a multi-label project each result is a tagged image with its label "
        "quality and its disputed tags (`suspects`: tag, name, saved state, probability "
        "present, probability of the saved state, confident-learning flag).",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.CURATORS
        )
        multi = project.kind == Project.Kind.MULTI
        mistakes = (
            selectors.tag_mistakes_list(project=project)
            if multi
            else selectors.mistakes_list(project=project)
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(mistakes, request, view=self)
        output = TagMistakeOutput if multi else LabelScoreOutput
        return paginator.get_paginated_response(
            output(page, many=True, context={"request": request}).data
        )


class ReviewScanApi(APIView):
    @extend_schema(
        responses={
            200: ReviewScanOutput,
            204: OpenApiResponse(description="The project was never scanned."),
        },
        description="The project's latest scan: its status (queued, running, succeeded, "
        "failed), error, when it was requested and finished, and its counts (labels "
        "scored, label issues, near-duplicate pairs).",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.CURATORS
        )
        scan = selectors.review_scan_latest(project=project)
        if scan is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ReviewScanOutput(scan).data)

    @extend_schema(
        request=None,
        responses={202: ReviewScanOutput},
        description="Queue a scan (or return the one already queued or running).",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.CURATORS
        )
        scan = services.review_scan_request(project=project, user=request.user)
        return Response(ReviewScanOutput(scan).data, status=status.HTTP_202_ACCEPTED)


class ReviewInput(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=[*services.REVIEW_CHOICES, "flip"],
        help_text="Single-label projects: keep, ambiguous, remove, restore or relabel; "
        "multi-label projects: keep (the tags) or flip (one tag).",
    )
    label_class = serializers.IntegerField(
        min_value=1, required=False, help_text="The new class, for relabel."
    )
    tag = serializers.IntegerField(min_value=1, required=False, help_text="The tag to flip.")


class ReviewDecisionApi(APIView):
    @extend_schema(request=ReviewInput, responses=ImageOutput)
    def post(self, request: Request, project_id: int, image_id: int) -> Response:
        image = access.image_access(
            user=request.user, project_id=project_id, image_id=image_id, roles=access.CURATORS
        )
        data = validated(ReviewInput, request.data)
        label_class, tag = (
            access.label_class_access(user=request.user, project_id=project_id, class_id=data[k])
            if data.get(k)
            else None
            for k in ("label_class", "tag")
        )
        image = services.review_decide(
            image=image,
            action=data["action"],
            reviewer=request.user,
            label_class=label_class,
            tag=tag,
        )
        return Response(ImageOutput(image, context={"request": request}).data)


class FeedbackSettingsOutput(serializers.ModelSerializer):
    class Meta:
        model = FeedbackSettings
        fields = ["uncertain_below"]


class FeedbackSettingsInput(serializers.Serializer):
    uncertain_below = NumberField(
        min_value=0.0,
        max_value=1.0,
        help_text="A confidence from 0 to 1: predictions less confident than this join "
        "the labeling queue.",
    )


class FeedbackSettingsApi(APIView):
    @extend_schema(responses=FeedbackSettingsOutput)
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(user=request.user, project_id=project_id)
        return Response(FeedbackSettingsOutput(services.feedback_settings(project=project)).data)

    @extend_schema(
        request=FeedbackSettingsInput,
        responses=FeedbackSettingsOutput,
        description="Owners and reviewers set the threshold (a fraction: 0.6 is 60%).",
    )
    def patch(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.CURATORS
        )
        data = validated(FeedbackSettingsInput, request.data)
        current = services.feedback_settings_update(
            project=project, uncertain_below=data["uncertain_below"]
        )
        return Response(FeedbackSettingsOutput(current).data)


class LabeledCountsOutput(serializers.Serializer):
    total = serializers.IntegerField()
    train = serializers.IntegerField()
    val = serializers.IntegerField()
    test = serializers.IntegerField()


class ProgressOutput(serializers.Serializer):
    images = serializers.IntegerField(help_text="Every image of the project.")
    embedded = serializers.IntegerField(
        help_text="Images with a stored embedding for the current backbone."
    )
    labeled = LabeledCountsOutput(
        help_text="Labeled images still in the dataset (not removed or ambiguous), by split."
    )
    in_queue = serializers.IntegerField(help_text="Images the labeling queue still serves.")
    model_version = serializers.IntegerField(
        allow_null=True, help_text="The active model's number; null before the first."
    )
    training = serializers.BooleanField(help_text="A training run is queued or running.")


class ProgressApi(APIView):
    @extend_schema(responses=ProgressOutput)
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(user=request.user, project_id=project_id)
        progress = selectors.project_progress(project=project)
        return Response(
            ProgressOutput(
                {
                    "images": progress.images,
                    "embedded": progress.embedded,
                    "labeled": {
                        "total": progress.labeled,
                        "train": progress.labeled_train,
                        "val": progress.labeled_val,
                        "test": progress.labeled_test,
                    },
                    "in_queue": progress.in_queue,
                    "model_version": progress.model_version,
                    "training": progress.training,
                }
            ).data
        )
