"""Every string a note can show, as English templates; other languages are catalogues.

Keys are stable; templates use `str.format` fields. Each other language is a gettext
catalogue, `common/locale/<lang>/LC_MESSAGES/radassist.po`, that translates these templates
(`msgctxt` = key, `msgid` = the English template) — Simplified Chinese ships.
`tests/test_notes.py` checks that every catalogue translates every key with the same fields
and the current English. Knowledge-base text (diagnosis names, discriminators, protocols)
carries its own `en`/`zh` pair; other languages find it in their catalogue by its English.
"""

from __future__ import annotations

from common.catalog import languages, template
from common.text import Text, join

STRINGS: dict[str, str] = {
    'title': "Draft imaging note",

    'sec.context': "Clinical context",
    'sec.analysed': "What was analysed",
    'sec.observations': "Observations",
    'sec.differential': "Differential diagnosis",
    'sec.follow_up': "Follow-up imaging",
    'sec.limitations': "Limitations",

    'analysed.study': "Study {uid}, model {model}, knowledge {knowledge}.",
    'analysed.series': (
        "Series {index}: {modality}, {region}, {n} image(s), key image {key_image}, image "
        "quality {quality:.2f}."),
    'analysed.no_series': "No image series could be analysed.",

    'summary.line': "{head}, {n} series: {parts}.",
    'summary.diagnostic_plane': "{n} diagnostic {plane}",
    'summary.diagnostic': "{n} diagnostic",
    'summary.ood': "{n} out of distribution (not diagnosed)",
    'summary.localizer': "{n} localizer",
    'summary.derived': "{n} derived screen or capture",
    'summary.non_image': "{n} non-image",
    'summary.unreadable': "{n} unreadable",

    'analysed.listed': "Series {index} ({description}): {role}, not diagnosed — {reason}.",

    'role.localizer': "localizer",
    'role.derived': "derived image (exam summary, dose screen or capture)",
    'role.non_image': "non-image object",
    'role.unreadable': "unreadable",

    'reason.image_type_localizer': "ImageType marks it a localizer",
    'reason.description_localizer': "its description names a planning scan",
    'reason.image_type_screen': "ImageType marks it a screen or report",
    'reason.rgb_screen': "a colour secondary image, not an acquisition",
    'reason.secondary_capture': "a secondary capture of a screen or report",
    'reason.non_image': "it holds no image objects",
    'reason.unreadable': "its pixels could not be decoded",
    'reason.no_pixels': "no decodable image",

    'analysed.four_d': (
        "Series {index} is 4D ({n} volumes); one representative volume was analysed."),
    'analysed.warning': "Warning: {text}",
    'analysed.ood': (
        "Series {index} looks out of distribution or unsupported (quality {quality:.2f}); "
        "it is described but not diagnosed."),
    'analysed.atypical': (
        "Series {index} is less typical of the training images than {share}% of validation "
        "images (quality {quality:.2f}): read its observations and differential with extra "
        "caution."),
    'analysed.plane_geometry': (
        "Series {index}: {plane} decided by the header geometry (ImageOrientationPatient, "
        "{angle}° from the true {nearest})."),
    'analysed.plane_oblique': (
        "Series {index}: oblique plane decided by the header geometry "
        "(ImageOrientationPatient): {angle}° from the nearest standard plane ({nearest}), "
        "beyond the {limit}° up to which a plane keeps its name."),
    'analysed.plane_image': (
        "Series {index}: {plane} read from the image by the model (the header gives no "
        "ImageOrientationPatient)."),
    'analysed.position': "Series {index}: patient position {position} (DICOM header, {code}).",
    'analysed.region_header': (
        "Series {index}: the header names {regions} ({evidence}); weighed with the image as a "
        "likelihood ratio of {ratio:.0f}."),
    'analysed.position_caution': (
        "Series {index}: the patient lies {position} and the header gives no orientation: "
        "the plane read from the image is less reliable (the training images are mostly of "
        "supine patients)."),

    'position.head_first': "head first",
    'position.feet_first': "feet first",
    'position.left_first': "left side first",
    'position.right_first': "right side first",
    'position.anterior_first': "anterior first",
    'position.posterior_first': "posterior first",
    'position.supine': "supine",
    'position.prone': "prone",
    'position.decubitus_right': "right lateral decubitus",
    'position.decubitus_left': "left lateral decubitus",
    'position.ap': "AP projection",
    'position.pa': "PA projection",
    'position.left_lateral': "left lateral projection",
    'position.right_lateral': "right lateral projection",
    'position.left_oblique': "left oblique projection",
    'position.right_oblique': "right oblique projection",
    'position.lateral': "lateral projection",

    'ctx.item': "{label}: {value} ({source})",
    'ctx.source.header': "from the DICOM header",
    'ctx.source.user': "entered by the user",
    'ctx.none': "No clinical context was given, and the DICOM header states none.",
    'ctx.used': (
        "The differential and the guideline rules read the age, the sex and the clinical "
        "question above; what the user enters overrides the header."),
    'ctx.key.age': "Age",
    'ctx.key.sex': "Sex",
    'ctx.key.history': "Clinical history",
    'ctx.key.reason': "Reason for the examination",
    'ctx.key.admitting_diagnoses': "Admitting diagnoses",
    'ctx.key.patient_history': "Patient history",
    'ctx.key.requested_procedure': "Requested procedure",
    'ctx.key.study_description': "Study description",
    'ctx.key.body_part': "Body part examined",
    'ctx.key.anatomic_region': "Anatomic region",
    'ctx.key.laterality': "Laterality",
    'ctx.key.protocol': "Protocol",
    'ctx.key.series_description': "Series descriptions",
    'ctx.age': "{age} years",
    'ctx.age_90': "90 years or older",
    'ctx.text': "“{text}”",
    'laterality.R': "right",
    'laterality.L': "left",
    'laterality.B': "both sides",
    'laterality.U': "unpaired organ",

    'unknown': "unknown",

    'obs.line': "{label}: {probability:.2f} ({band})",
    'obs.none': "No observation above the reporting threshold.",

    'band.likely': "likely",
    'band.possible': "possible",
    'band.indeterminate': "indeterminate",
    'band.uncalibrated': "not calibrated",

    'obs.bands': (
        "Bands: likely ≥ 0.70, possible 0.30–0.70, indeterminate below 0.30 (calibrated "
        "probabilities)."),

    'ddx.item': "{rank}. {name} — probability {likelihood:.2f} ({band})",
    'ddx.item_uncalibrated': "{rank}. {name} — rank score {score:.2f} (not calibrated)",
    'ddx.supporting': "Supporting: {items}",
    'ddx.against': "Against: {items}",
    'ddx.region': "Model attention: {region} of the key image (series {series}, image {slice}).",
    'ddx.cases': "Similar teaching cases: {items}",
    'ddx.knowledge': "Knowledge entry: {id}",
    'ddx.discriminator': "Versus {other}: {text}",
    'ddx.none_ood': "No differential is offered: the input is out of distribution or unsupported.",
    'ddx.none_cross_sectional': (
        "No differential is offered: the model detects no abnormalities on CT or MR (it "
        "reads only modality, region and plane), and no clinical question was given, so "
        "the image alone cannot support one."),
    'ddx.none_no_finding': (
        "No differential is offered: no finding among those the model detects reaches its "
        "threshold ({items}), and no clinical question was given, so the image alone "
        "cannot support one."),
    'ddx.none_no_finding_ctmr': (
        "No differential is offered: on CT and MR the model detects only the findings "
        "listed here, and none reaches its threshold ({items}); it detects no other "
        "abnormality, and no clinical question was given, so the image alone cannot "
        "support one."),
    'ddx.none_mismatch': (
        "No differential is offered: the header and the image disagree about the modality, "
        "so the study is flagged for a human check first."),
    'ddx.finding_p': "{label} {probability:.2f}",
    'ddx.finding_p_of': "{label} {probability:.2f} of {threshold:.2f}",
    'ddx.ask_history': (
        "Add the clinical question (the viewer's clinical-history box, or --history) to "
        "rank diagnoses against it."),
    'ddx.none_kb': "No differential is offered: the knowledge base is empty.",
    'ddx.how': (
        "Each number is the probability that the item is the diagnosis, calibrated on "
        "training teaching cases ranked the same way; bands as for the observations."),
    'ddx.how_uncalibrated': (
        "No calibration is available for this model: the rank scores order the items and "
        "are not probabilities."),
    'ddx.basis_history': (
        "The image shows no finding the model detects; this list rests on the clinical "
        "question, the region and modality the model reads, age and sex, and similar "
        "teaching cases — not on an abnormality seen in the image."),
    'ddx.basis_findings': (
        "This list rests on the image findings at their thresholds ({items}), the region "
        "and modality, the clinical context and similar teaching cases."),
    'ddx.hit_rate': (
        "How far to trust it: on validation cases ({modality}, {situation}) the diagnosis "
        "was among the top 5 in {value:.0%} of cases (95% CI {low:.0%}–{high:.0%}, n = "
        "{n})."),
    'ddx.with_history': "with a clinical question",
    'ddx.without_history': "without a clinical question",

    'ev.region': "region fits ({region})",
    'ev.region_no': "region does not fit ({region})",
    'ev.modality': "typically seen on {modality}",
    'ev.modality_no': "not typically diagnosed on {modality}",
    'ev.image_text': "image resembles its typical features (similarity {value:.2f})",
    'ev.image_text_no': "image does not resemble its typical features (similarity {value:.2f})",
    'ev.history': "history mentions {words}",
    'ev.history_similar': "history resembles its typical presentation",
    'ev.age_in': "age {age} within typical range {lo}–{hi}",
    'ev.age_out': "age {age} outside typical range {lo}–{hi}",
    'ev.sex_no': "typically affects {sex} patients only",
    'ev.cases': "{n} similar teaching case(s) had this diagnosis",
    'ev.finding': "{label} {probability:.2f}",
    'ev.finding_low': "{label} only {probability:.2f}",

    'sex.F': "female",
    'sex.M': "male",
    'sex.O': "other",

    'zone.upper': "upper",
    'zone.middle': "middle",
    'zone.lower': "lower",
    'zone.left': "left",
    'zone.central': "central",
    'zone.right': "right",
    'zone.name': "{vertical} {horizontal} zone",

    'fu.item': (
        "For {diagnosis}: {protocol} ({modality}) — {timing}; urgency: {urgency}. Source: "
        "{citation} [{rule}]"),
    'fu.none': "No follow-up imaging is suggested.",
    'fu.not_applicable': "Considered, not applicable — {rule}: {reason}",
    'fu.not_evaluated': "could not be evaluated: {reason}",
    'fu.population.age_below': (
        "not applicable: patient is {age} years old (the guideline covers ages {bound} and "
        "over)"),
    'fu.population.age_above': (
        "not applicable: patient is {age} years old (the guideline covers ages up to {bound})"),
    'fu.population.sex': "not applicable: {sex} patient (the guideline covers {bound} patients)",
    'fu.kb_not_applicable': (
        "Considered, not applicable — {protocol} for {diagnosis}: patient is {age} years old, "
        "and its typical patients are {lo}–{hi} years old."),
    'fu.rule': "rule {rule}",
    'fu.no_rule': "knowledge base recommendation, no executable rule",

    'urgency.emergent': "emergent",
    'urgency.urgent': "urgent",
    'urgency.soon': "soon",
    'urgency.routine': "routine",
    'urgency.none': "none",

    'lim.draft': "This note is an AI draft for research and teaching; it is not a diagnosis.",
    'lim.scope': (
        "The model was trained on public teaching images (MedPix, NIH ChestX-ray14, "
        "COVID-19 figures) and sees one series at a time, without prior studies."),
    'lim.knowledge': (
        "Differential items come only from the knowledge base ({n} diagnoses); a disease "
        "outside it cannot be suggested."),
    'lim.no_library': "No teaching-case library was available for similar cases.",
    'lim.no_text_model': "The image–text model was unavailable; ranking used context only.",
    'lim.atypical': (
        "An analysed image is atypical of the training data; the model's probabilities are "
        "least reliable there."),
    'lim.ood': "Out-of-distribution input: findings and differential are withheld.",
    'lim.saliency': "Attention maps show where the model looked, not where disease is.",
    'lim.paediatric': (
        "Paediatric patient (age {age}): outside the population the model was mostly trained "
        "on; read its observations with extra caution."),
    'lim.paediatric_train': (
        "Children are {children} of the {images} training images with a stated age ({young} "
        "under 5)."),
    'lim.paediatric_measured': (
        "Measured on {n} paediatric MedPix validation images of {cases} cases (95% CI): "
        "modality {modality}, region {region}, plane {plane}; on adults' images: modality "
        "{a_modality}, region {a_region}, plane {a_plane}."),
    'lim.paediatric_pneumonia': (
        "Pneumonia on {n} paediatric NIH chest radiographs: AUROC {auc}; adults {a_auc}."),
    'lim.paediatric_unmeasured': (
        "No measurement on paediatric validation images is available for this model."),
    'lim.rate': "{value:.0%} ({low:.0%}–{high:.0%})",
    'lim.auc': "{value:.2f} ({low:.2f}–{high:.2f})",

    'disclaimer': "AI draft — not reviewed by a physician",

    'label:modality:CT': "CT",
    'label:modality:MR': "MR",
    'label:modality:XR': "radiograph",
    'label:region:head': "head",
    'label:region:spine_muscles': "spine and muscles",
    'label:region:thorax': "thorax",
    'label:region:abdomen': "abdomen",
    'label:region:reproductive_urinary': "reproductive and urinary system",
    'label:region:chest_radiograph': "chest (radiograph)",
    'label:plane:axial': "axial plane",
    'label:plane:coronal': "coronal plane",
    'label:plane:sagittal': "sagittal plane",
    'label:plane:oblique': "oblique plane",
    'label:finding:pneumonia': "pneumonia pattern",
    'label:finding:covid19': "COVID-19 pattern",
    'label:finding:infiltration': "infiltration",
    'label:finding:atelectasis': "atelectasis",
    'label:finding:edema': "pulmonary oedema",
    'label:finding:effusion': "pleural effusion",
    'label:finding:consolidation': "consolidation",
    'label:finding:cardiomegaly': "cardiomegaly",
    'label:finding:nodule': "nodule",
    'label:finding:mass': "mass",
    'label:finding:pneumothorax': "pneumothorax",
    'label:finding:enhancement': "enhancement",
    'label:finding:oedema': "oedema",
    'label:finding:cyst': "cyst",
    'label:finding:calcification': "calcification",
    'label:finding:haemorrhage': "haemorrhage",
    'label:finding:fracture': "fracture",
    'label:finding:infarct': "infarct",
    'label:finding:hydrocephalus': "hydrocephalus",
    'label:finding:dilatation': "dilatation",
    'label:finding:wall_thickening': "wall thickening",
    'label:finding:free_fluid': "fluid",
    'label:finding:mass_effect': "mass effect",
    'label:quality:ood': "out of distribution",
    'label:quality:in_distribution': "in distribution",

    'kb_region:neuro': "neuro",
    'kb_region:head_neck': "head and neck",
    'kb_region:spine': "spine",
    'kb_region:chest': "chest",
    'kb_region:cardiovascular': "cardiovascular",
    'kb_region:abdomen': "abdomen",
    'kb_region:genitourinary': "genitourinary",
    'kb_region:musculoskeletal': "musculoskeletal",

    'list.separator': "; ",
    'list.comma': ", ",

    'label.untranslated': "{text}",

    'summary.head': "{modality} {region}",

    'warning.untranslated': "{text}",
    'warning.with_numbers': "{text} ({numbers})",
    'warning.phantom': "a test object (phantom), not anatomy: out of distribution, not diagnosed",
    'warning.skipped_instance': "an instance could not be decoded and was skipped",
    'warning.instances_set_aside': (
        "instances whose decoding killed the analysis were set aside: not analysed"),
    'warning.mixed_patient_ids': "one study UID carries several patient IDs",
    'warning.mixed_orientation': "the series has several slice orientations; split into stacks",
    'warning.mixed_size': "the series has images of several sizes; split",
    'warning.mixed_pixel_spacing': "the series has several pixel spacings; split",
    'warning.mixed_geometry': "some slices lack a position; split",
    'warning.duplicate_positions': "some slices repeat a position",
    'warning.not_a_volume': (
        "all slices share one position: repeats (time points, echoes), not a volume"),
    'warning.uneven_spacing': "uneven slice spacing; the volume's spacing is the median",
    'warning.missing_slices': "slices may be missing",
    'warning.gantry_tilt': (
        "gantry tilt (or a sheared volume); spacing measured along the slice normal"),
    'warning.too_few_slices': "too few slices for a volume (a localizer or an incomplete series?)",
    'warning.missing_pixel_spacing': "no pixel spacing; 1.0 mm assumed",
    'warning.mosaic': "Siemens MOSAIC image unpacked into its slices",
    'warning.four_d': (
        "4D series (diffusion directions, time points or echoes) read as one series, "
        "analysed on one representative volume"),
    'warning.empty_slices': "empty edge slices of the volume skipped",
    'warning.subsampled': "many slices: an evenly spaced subset analysed",
    'warning.header_window_saturates': (
        "the header window saturates the image; the 0.5-99.5 % window was used"),
    'warning.out_of_distribution': "out of the model's scope: not diagnosed",
    'warning.modality_mismatch': "the header's modality disagrees with the image",
    'warning.plane_mismatch': (
        "the header's orientation (ImageOrientationPatient) disagrees with the plane the "
        "image shows"),
    'warning.region_mismatch': (
        "the header's body part or description names another region than the image shows"),
    'warning.stack_failed': "the analysis of an image stack failed",
    'warning.bad_modality_lut': "the Modality LUT (rescale) is abnormal",
}


def t(key: str, **fields) -> Text:
    """One string in every language, formatted with the same fields."""
    english = STRINGS[key]
    return Text.per_language(lambda lang: template(lang, key, english).format(**fields),
                             languages())


def tt(key: str, **fields: Text | str | int | float) -> Text:
    """Like `t`, but fields that are `Text` are substituted language by language."""
    english = STRINGS[key]

    def make(lang: str) -> str:
        values = {k: (v.get(lang) if isinstance(v, Text) else v) for k, v in fields.items()}
        return template(lang, key, english).format(**values)

    return Text.per_language(make, languages())


DISCLAIMER = t("disclaimer")


def observation_label(code: str, fallback: str) -> Text:
    if f"label:{code}" in STRINGS:
        return t(f"label:{code}")
    return t("label.untranslated", text=fallback or code)


def region_label(region: str) -> Text:
    key = f"kb_region:{region}"
    return t(key) if key in STRINGS else Text(region, region)


def joined(items, separator: str = "list.comma") -> Text:
    """`items` as one list, with each language's separator ("list.comma" or
    "list.separator")."""
    return join(items, t(separator))
