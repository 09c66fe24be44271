"""Every string a note can show, in English and Simplified Chinese.

Keys are stable; templates use `str.format` fields. `tests/test_notes_strings.py` checks
that both languages exist for every key and use the same fields. Knowledge-base text
(diagnosis names, discriminators, protocols) carries its own `en`/`zh` pair.
"""

from __future__ import annotations

from .note import Text

DISCLAIMER = Text("AI draft — not reviewed by a physician", "AI 草稿——未经医师审核")

STRINGS: dict[str, tuple[str, str]] = {
    # section titles
    "title": ("Draft imaging note", "影像报告草稿"),
    "sec.analysed": ("What was analysed", "分析内容"),
    "sec.observations": ("Observations", "观察所见"),
    "sec.differential": ("Differential diagnosis", "鉴别诊断"),
    "sec.follow_up": ("Follow-up imaging", "随访影像建议"),
    "sec.limitations": ("Limitations", "局限性"),
    # section 1
    "analysed.study": ("Study {uid}, model {model}, knowledge {knowledge}.",
                       "检查 {uid}，模型 {model}，知识库 {knowledge}。"),
    "analysed.series": (
        "Series {index}: {modality}, {region}, {n} image(s), key image {key_image}, "
        "image quality {quality:.2f}.",
        "序列 {index}：{modality}，{region}，{n} 幅图像，关键图像 {key_image}，"
        "图像质量 {quality:.2f}。"),
    "analysed.no_series": ("No image series could be analysed.", "没有可分析的图像序列。"),
    "summary.line": ("{head}, {n} series: {parts}.", "{head}，共 {n} 个序列：{parts}。"),
    "summary.diagnostic_plane": ("{n} diagnostic {plane}", "{n} 个诊断序列（{plane}）"),
    "summary.diagnostic": ("{n} diagnostic", "{n} 个诊断序列"),
    "summary.ood": ("{n} out of distribution (not diagnosed)", "{n} 个超出适用范围（不作诊断）"),
    "summary.localizer": ("{n} localizer", "{n} 个定位像"),
    "summary.derived": ("{n} derived screen or capture",
                        "{n} 个衍生图像（检查摘要、剂量页或截屏）"),
    "summary.non_image": ("{n} non-image", "{n} 个非图像对象"),
    "summary.unreadable": ("{n} unreadable", "{n} 个无法读取"),
    "analysed.listed": ("Series {index} ({description}): {role}, not diagnosed — {reason}.",
                        "序列 {index}（{description}）：{role}，不作诊断 — {reason}。"),
    "role.localizer": ("localizer", "定位像"),
    "role.derived": ("derived image (exam summary, dose screen or capture)",
                     "衍生图像（检查摘要、剂量页或截屏）"),
    "role.non_image": ("non-image object", "非图像对象"),
    "role.unreadable": ("unreadable", "无法读取"),
    "reason.image_type_localizer": ("ImageType marks it a localizer",
                                    "ImageType 标明为定位像"),
    "reason.description_localizer": ("its description names a planning scan",
                                     "序列描述表明为扫描定位像"),
    "reason.image_type_screen": ("ImageType marks it a screen or report",
                                 "ImageType 标明为屏幕或报告页"),
    "reason.rgb_screen": ("a colour secondary image, not an acquisition",
                          "彩色二次图像，并非采集图像"),
    "reason.secondary_capture": ("a secondary capture of a screen or report",
                                 "屏幕或报告页的二次采集图像"),
    "reason.non_image": ("it holds no image objects", "不含图像对象"),
    "reason.unreadable": ("its pixels could not be decoded", "像素无法解码"),
    "reason.no_pixels": ("no decodable image", "没有可解码的图像"),
    "analysed.four_d": ("Series {index} is 4D ({n} volumes); one representative volume was "
                        "analysed.", "序列 {index} 为四维序列（{n} 个容积），仅分析一个代表容积。"),
    "analysed.warning": ("Warning: {text}", "警告：{text}"),
    "analysed.ood": (
        "Series {index} looks out of distribution or unsupported (quality {quality:.2f}); "
        "it is described but not diagnosed.",
        "序列 {index} 超出模型适用范围或不受支持（质量 {quality:.2f}），仅作描述，不作诊断。"),
    "analysed.atypical": (
        "Series {index} is less typical of the training images than {share}% of validation "
        "images (quality {quality:.2f}): read its observations and differential with extra "
        "caution.",
        "序列 {index} 与训练图像的相似程度低于 {share}% 的验证图像（质量 {quality:.2f}），"
        "其观察结果和鉴别诊断请格外谨慎解读。"),
    "analysed.context": ("Clinical context: {text}.", "临床信息：{text}。"),
    "analysed.context_none": ("No clinical context was given.", "未提供临床信息。"),
    "context.age": ("age {age}", "年龄 {age} 岁"),
    "context.sex.F": ("female", "女性"),
    "context.sex.M": ("male", "男性"),
    "context.history": ("history: \u201c{text}\u201d", "病史：\u201c{text}\u201d"),
    "unknown": ("unknown", "未知"),
    # section 2
    "obs.line": ("{label}: {probability:.2f} ({band})", "{label}：{probability:.2f}（{band}）"),
    "obs.none": ("No observation above the reporting threshold.", "没有达到报告阈值的观察所见。"),
    "band.likely": ("likely", "可能性大"),
    "band.possible": ("possible", "可能"),
    "band.indeterminate": ("indeterminate", "不确定"),
    "band.uncalibrated": ("not calibrated", "未校准"),
    "obs.bands": (
        "Bands: likely \u2265 0.70, possible 0.30\u20130.70, indeterminate below 0.30 "
        "(calibrated probabilities).",
        "分级：可能性大 \u2265 0.70，可能 0.30\u20130.70，不确定 < 0.30（已校准概率）。"),
    # section 3
    "ddx.item": ("{rank}. {name} \u2014 probability {likelihood:.2f} ({band})",
                 "{rank}. {name} \u2014 概率 {likelihood:.2f}（{band}）"),
    "ddx.item_uncalibrated": ("{rank}. {name} \u2014 rank score {score:.2f} (not calibrated)",
                              "{rank}. {name} \u2014 排序分数 {score:.2f}（未校准）"),
    "ddx.supporting": ("Supporting: {items}", "支持：{items}"),
    "ddx.against": ("Against: {items}", "不支持：{items}"),
    "ddx.region": ("Model attention: {region} of the key image (series {series}, image {slice}).",
                   "模型关注区域：关键图像的{region}（序列 {series}，图像 {slice}）。"),
    "ddx.cases": ("Similar teaching cases: {items}", "相似教学病例：{items}"),
    "ddx.knowledge": ("Knowledge entry: {id}", "知识库条目：{id}"),
    "ddx.discriminator": ("Versus {other}: {text}", "与{other}鉴别：{text}"),
    "ddx.none_ood": ("No differential is offered: the input is out of distribution or unsupported.",
                     "不提供鉴别诊断：输入超出模型适用范围或不受支持。"),
    "ddx.none_cross_sectional": (
        "No differential is offered: the model detects no abnormalities on CT or MR (it reads "
        "only modality, region and plane), and no clinical question was given, so the image "
        "alone cannot support one.",
        "不提供鉴别诊断：模型在 CT 或磁共振上不检测异常（仅识别检查方式、部位和层面），"
        "且未提供临床问题，仅凭图像无法支持鉴别诊断。"),
    "ddx.none_no_finding": (
        "No differential is offered: no finding among those the model detects reaches its "
        "threshold ({items}), and no clinical question was given, so the image alone cannot "
        "support one.",
        "不提供鉴别诊断：模型可检测的所见均未达到其阈值（{items}），且未提供临床问题，"
        "仅凭图像无法支持鉴别诊断。"),
    "ddx.none_no_finding_ctmr": (
        "No differential is offered: on CT and MR the model detects only the findings listed "
        "here, and none reaches its threshold ({items}); it detects no other abnormality, and "
        "no clinical question was given, so the image alone cannot support one.",
        "不提供鉴别诊断：在 CT 和磁共振上模型仅能检测此处所列所见，且均未达到其阈值（{items}）；"
        "模型不检测其他异常，且未提供临床问题，仅凭图像无法支持鉴别诊断。"),
    "ddx.none_mismatch": (
        "No differential is offered: the header and the image disagree about the modality, "
        "so the study is flagged for a human check first.",
        "不提供鉴别诊断：头文件与图像本身对检查方式的判断不一致，需先由人工核对。"),
    "ddx.finding_p": ("{label} {probability:.2f}", "{label} {probability:.2f}"),
    "ddx.finding_p_of": ("{label} {probability:.2f} of {threshold:.2f}",
                         "{label} {probability:.2f}/{threshold:.2f}"),
    "ddx.ask_history": (
        "Add the clinical question (the viewer's clinical-history box, or --history) to rank "
        "diagnoses against it.",
        "请补充临床问题（查看器中的临床病史框，或 --history 参数），以便据此对诊断排序。"),
    "ddx.none_kb": ("No differential is offered: the knowledge base is empty.",
                    "不提供鉴别诊断：知识库为空。"),
    "ddx.how": (
        "Each number is the probability that the item is the diagnosis, calibrated on training "
        "teaching cases ranked the same way; bands as for the observations.",
        "每项数字为该项即为最终诊断的概率，已在以相同方式排序的训练教学病例上校准；分级同观察所见。"),
    "ddx.how_uncalibrated": (
        "No calibration is available for this model: the rank scores order the items and are "
        "not probabilities.",
        "此模型无可用校准：排序分数仅用于排序，并非概率。"),
    "ddx.basis_history": (
        "The image shows no finding the model detects; this list rests on the clinical "
        "question, the region and modality the model reads, age and sex, and similar teaching "
        "cases \u2014 not on an abnormality seen in the image.",
        "图像中没有模型可检测的所见；本列表依据临床问题、模型识别的部位和检查方式、年龄和性别"
        "以及相似教学病例，而非图像中所见的异常。"),
    "ddx.basis_findings": (
        "This list rests on the image findings at their thresholds ({items}), the region and "
        "modality, the clinical context and similar teaching cases.",
        "本列表依据达到阈值的图像所见（{items}）、部位和检查方式、临床信息及相似教学病例。"),
    "ddx.hit_rate": (
        "How far to trust it: on validation cases ({modality}, {situation}) the diagnosis was "
        "among the top 5 in {value:.0%} of cases (95% CI {low:.0%}\u2013{high:.0%}, "
        "n = {n}).",
        "可信程度：在验证病例中（{modality}，{situation}），正确诊断位于前 5 项的比例为 "
        "{value:.0%}（95% CI {low:.0%}\u2013{high:.0%}，n = {n}）。"),
    "ddx.with_history": ("with a clinical question", "有临床问题"),
    "ddx.without_history": ("without a clinical question", "无临床问题"),
    # evidence phrases
    "ev.region": ("region fits ({region})", "部位符合（{region}）"),
    "ev.region_no": ("region does not fit ({region})", "部位不符（{region}）"),
    "ev.modality": ("typically seen on {modality}", "{modality} 上常见"),
    "ev.modality_no": ("not typically diagnosed on {modality}", "通常不在 {modality} 上诊断"),
    "ev.image_text": ("image resembles its typical features (similarity {value:.2f})",
                      "图像与其典型表现相似（相似度 {value:.2f}）"),
    "ev.image_text_no": ("image does not resemble its typical features (similarity {value:.2f})",
                         "图像与其典型表现不相似（相似度 {value:.2f}）"),
    "ev.history": ("history mentions {words}", "病史提及{words}"),
    "ev.history_similar": ("history resembles its typical presentation",
                           "病史与其典型临床表现相似"),
    "ev.age_in": ("age {age} within typical range {lo}\u2013{hi}",
                  "年龄 {age} 岁在典型范围 {lo}\u2013{hi} 岁内"),
    "ev.age_out": ("age {age} outside typical range {lo}\u2013{hi}",
                   "年龄 {age} 岁不在典型范围 {lo}\u2013{hi} 岁内"),
    "ev.sex_no": ("typically affects {sex} patients only", "通常仅见于{sex}患者"),
    "ev.cases": ("{n} similar teaching case(s) had this diagnosis", "{n} 个相似教学病例为此诊断"),
    "ev.finding": ("{label} {probability:.2f}", "{label} {probability:.2f}"),
    "ev.finding_low": ("{label} only {probability:.2f}", "{label} 仅 {probability:.2f}"),
    "sex.F": ("female", "女性"),
    "sex.M": ("male", "男性"),
    # saliency zones
    "zone.upper": ("upper", "上"),
    "zone.middle": ("middle", "中"),
    "zone.lower": ("lower", "下"),
    "zone.left": ("left", "左"),
    "zone.central": ("central", "中央"),
    "zone.right": ("right", "右"),
    "zone.name": ("{vertical} {horizontal} zone", "{horizontal}{vertical}区域"),
    # section 4
    "fu.item": ("For {diagnosis}: {protocol} ({modality}) \u2014 {timing}; urgency: {urgency}. "
                "Source: {citation} [{rule}]",
                "针对{diagnosis}：{protocol}（{modality}）\u2014 {timing}；紧急程度：{urgency}。"
                "依据：{citation}［{rule}］"),
    "fu.none": ("No follow-up imaging is suggested.", "无随访影像建议。"),
    "fu.not_applicable": ("Considered, not applicable \u2014 {rule}: {reason}",
                          "已考虑但不适用 \u2014 {rule}：{reason}"),
    "fu.not_evaluated": ("could not be evaluated: {reason}", "无法评估：{reason}"),
    "fu.rule": ("rule {rule}", "规则 {rule}"),
    "fu.no_rule": ("knowledge base recommendation, no executable rule",
                   "知识库建议，无可执行规则"),
    "urgency.emergent": ("emergent", "紧急"),
    "urgency.urgent": ("urgent", "尽快"),
    "urgency.soon": ("soon", "近期"),
    "urgency.routine": ("routine", "常规"),
    "urgency.none": ("none", "无"),
    # section 5
    "lim.draft": ("This note is an AI draft for research and teaching; it is not a diagnosis.",
                  "本报告为用于科研与教学的 AI 草稿，并非诊断。"),
    "lim.scope": (
        "The model was trained on public teaching images (MedPix, NIH ChestX-ray14, COVID-19 "
        "figures) and sees one series at a time, without prior studies.",
        "模型以公开教学图像（MedPix、NIH ChestX-ray14、COVID-19 论文插图）训练，"
        "每次仅分析单个序列，不参考既往检查。"),
    "lim.knowledge": (
        "Differential items come only from the knowledge base ({n} diagnoses); a disease outside "
        "it cannot be suggested.",
        "鉴别诊断仅来自知识库（{n} 种诊断），知识库以外的疾病无法被提出。"),
    "lim.no_library": ("No teaching-case library was available for similar cases.",
                       "无教学病例库，未检索相似病例。"),
    "lim.no_text_model": ("The image\u2013text model was unavailable; ranking used context only.",
                          "图像-文本模型不可用，排序仅依据临床信息。"),
    "lim.atypical": ("An analysed image is atypical of the training data; the model's "
                     "probabilities are least reliable there.",
                     "所分析的图像与训练数据差异较大，模型给出的概率在此最不可靠。"),
    "lim.ood": ("Out-of-distribution input: findings and differential are withheld.",
                "输入超出适用范围：不给出所见与鉴别诊断。"),
    "lim.saliency": ("Attention maps show where the model looked, not where disease is.",
                     "关注图显示模型关注的位置，并不代表病变所在。"),
}

# Model observation codes -> (English, Chinese) labels. Unknown codes fall back to the
# model's own English label, marked as untranslated in Chinese.
OBSERVATION_LABELS: dict[str, tuple[str, str]] = {
    "modality:CT": ("CT", "CT"),
    "modality:MR": ("MR", "磁共振"),
    "modality:XR": ("radiograph", "X 线片"),
    "region:head": ("head", "头部"),
    "region:spine_muscles": ("spine and muscles", "脊柱与肌肉"),
    "region:thorax": ("thorax", "胸部"),
    "region:abdomen": ("abdomen", "腹部"),
    "region:reproductive_urinary": ("reproductive and urinary system", "生殖与泌尿系统"),
    "region:chest_radiograph": ("chest (radiograph)", "胸部（X 线片）"),
    "plane:axial": ("axial plane", "轴位"),
    "plane:coronal": ("coronal plane", "冠状位"),
    "plane:sagittal": ("sagittal plane", "矢状位"),
    "finding:pneumonia": ("pneumonia pattern", "肺炎征象"),
    "finding:covid19": ("COVID-19 pattern", "COVID-19 征象"),
    "finding:infiltration": ("infiltration", "浸润影"),
    "finding:atelectasis": ("atelectasis", "肺不张"),
    "finding:edema": ("pulmonary oedema", "肺水肿"),
    "finding:effusion": ("pleural effusion", "胸腔积液"),
    "finding:consolidation": ("consolidation", "实变"),
    "finding:cardiomegaly": ("cardiomegaly", "心影增大"),
    "finding:nodule": ("nodule", "结节"),
    "finding:mass": ("mass", "肿块"),
    "finding:pneumothorax": ("pneumothorax", "气胸"),
    "finding:enhancement": ("enhancement", "强化"),
    "finding:oedema": ("oedema", "水肿"),
    "finding:cyst": ("cyst", "囊肿"),
    "finding:calcification": ("calcification", "钙化"),
    "finding:haemorrhage": ("haemorrhage", "出血"),
    "finding:fracture": ("fracture", "骨折"),
    "finding:infarct": ("infarct", "梗死"),
    "finding:hydrocephalus": ("hydrocephalus", "脑积水"),
    "finding:dilatation": ("dilatation", "扩张"),
    "finding:wall_thickening": ("wall thickening", "壁增厚"),
    "finding:free_fluid": ("fluid", "积液"),
    "finding:mass_effect": ("mass effect", "占位效应"),
    "quality:ood": ("out of distribution", "超出适用范围"),
    "quality:in_distribution": ("in distribution", "在适用范围内"),
}
REGION_LABELS: dict[str, tuple[str, str]] = {
    "neuro": ("neuro", "神经"),
    "head_neck": ("head and neck", "头颈"),
    "spine": ("spine", "脊柱"),
    "chest": ("chest", "胸部"),
    "cardiovascular": ("cardiovascular", "心血管"),
    "abdomen": ("abdomen", "腹部"),
    "genitourinary": ("genitourinary", "泌尿生殖"),
    "musculoskeletal": ("musculoskeletal", "肌肉骨骼"),
}


def t(key: str, **fields) -> Text:
    """One string in both languages, formatted with the same fields."""
    en, zh = STRINGS[key]
    return Text(en.format(**fields), zh.format(**fields))


def tt(key: str, **fields: Text | str | int | float) -> Text:
    """Like `t`, but fields that are `Text` are substituted language by language."""
    en, zh = STRINGS[key]
    en_fields = {k: (v.en if isinstance(v, Text) else v) for k, v in fields.items()}
    zh_fields = {k: (v.zh if isinstance(v, Text) else v) for k, v in fields.items()}
    return Text(en.format(**en_fields), zh.format(**zh_fields))


def observation_label(code: str, fallback: str) -> Text:
    if code in OBSERVATION_LABELS:
        return Text(*OBSERVATION_LABELS[code])
    return Text(fallback or code, f"{fallback or code}（英文）")


def region_label(region: str) -> Text:
    return Text(*REGION_LABELS.get(region, (region, region)))
